//! Answers get_egress_path_config with every field of the builder (wasmta_test.go checks what
//! the host decodes), a misspelt document, or no opinion.
#![no_std]

use core::time::Duration;
use wasmta::{EgressPathConfig, EgressSite, Result, Text, Tls};

wasmta::plugin! {
    get_egress_path_config: on_egress_path_config,
}

fn on_egress_path_config(e: &mut EgressSite) -> Result<()> {
    match e.routing_domain()? {
        "every.test" => {
            let mut ehlo: Text<255> = Text::from_str("out.");
            ehlo.push_str(e.site()?);
            e.make_egress_path_config(
                &EgressPathConfig::new()
                    .connection_limit(3)
                    .max_deliveries_per_connection(100)
                    .max_message_rate("100/s,max_burst=10")
                    .max_connection_rate("5/m")
                    .enable_tls(Tls::RequiredInsecure)
                    .smtp_auth_plain("relay-user", "smarthost")
                    .allow_smtp_auth_plain_without_tls(true)
                    .ehlo_domain(&ehlo)
                    .source_address("127.0.0.9")
                    .smtp_port(2525)
                    .connect_timeout(Duration::from_millis(1500))
                    .command_timeout(Duration::from_secs(60))
                    .data_timeout(Duration::from_secs(600))
                    .idle_timeout(Duration::from_secs(90)),
            )
        }
        "typo.test" => e.make_egress_path_config_json(r#"{"conection_limit":1}"#),
        _ => Ok(()),
    }
}
