//! The Rust SDK's version of the conformance plugin (../SPEC.md). Built by build.sh.
#![no_std]

use core::time::Duration;
use wasmta::{EgressPathConfig, EgressSite, Error, Message, Mx, Queue, QueueConfig, Result, Text, Tls};

wasmta::plugin! {
    smtp_server_message_received: on_message,
    get_queue_config: on_queue_config,
    get_egress_path_config: on_egress_path_config,
}

/// The decimal status of a host call's result ("0" when it succeeded).
fn status(r: Result<()>) -> Text<20> {
    Text::from_int(match r {
        Ok(()) => 0,
        Err(e) => e.code() as i64,
    })
}

fn on_message(m: &mut Message) -> Result<()> {
    let rcpt = m.recipient(0)?.unwrap_or("");
    let d = match rcpt.rfind('@') {
        Some(i) => &rcpt[i + 1..],
        None => rcpt,
    };
    match d {
        "fail.test" => {
            m.set_meta("tenant", "leak")?;
            return Err(Error::msg("conformance failure"));
        }
        "reject.test" => return m.reject(550, "5.7.1 rejected by conformance"),
        "reject4.test" => return m.reject(451, "4.7.1 try later"),
        "routing.test" => m.set_meta("routing_domain", "my.smarthost.test")?,
        "queue.test" => m.set_meta("queue", "my.smarthost.test")?,
        "v4.test" => m.set_meta("queue", "[127.0.0.5]")?,
        "v6.test" => m.set_meta("routing_domain", "[IPv6:::1]")?,
        "nc.test" => m.set_meta("routing_domain", "[::1]")?,
        "badliteral.test" => {
            let st = status(m.set_meta("routing_domain", "[10.0.0.1"));
            m.set_meta("literal_status", &st)?;
        }
        _ => {}
    }
    if let Some(s) = m.header("Subject")? {
        m.set_meta("subject", s)?;
    }
    if let Some(v) = m.meta("in")? {
        m.set_meta("out", v)?;
    }
    m.set_meta("sender", m.sender()?)?;
    let n = m.recipient_count()?;
    m.set_meta("rcpts", &Text::<20>::from_int(n as i64))?;
    let last = m.recipient(n.wrapping_sub(1))?.unwrap_or("");
    m.set_meta("last_rcpt", last)?;
    m.set_meta("config", m.config()?)?;
    m.prepend_header("X-Conformance", "1")?;
    m.append_header("X-Conformance-End", "1")?;
    let st = status(m.prepend_header("X-Bad", "a\r\nInjected: yes"));
    m.set_meta("inject_status", &st)?;
    Ok(())
}

const MX: &[Mx] = &[
    Mx::Host("smart.host.local"),
    Mx::NameAddr { name: "mx.example.com", addr: "127.0.0.3" },
];

fn on_queue_config(q: &mut Queue) -> Result<()> {
    match q.domain()? {
        "mx.test" => q.make_queue_config(&QueueConfig::new().retry_interval(Duration::from_secs(5)).mx_list(MX)),
        "badcfg.test" => match q.make_queue_config_json(r#"{"mx_lsit":["x"]}"#) {
            Err(_) => Err(Error::msg("bad config refused")),
            Ok(()) => Ok(()),
        },
        _ => Ok(()),
    }
}

fn on_egress_path_config(e: &mut EgressSite) -> Result<()> {
    match e.routing_domain()? {
        "smarthost.test" => {
            let mut ehlo: Text<255> = Text::from_str("out.");
            if !ehlo.push_str(e.site()?) {
                return Err(Error::msg("site name too long"));
            }
            e.make_egress_path_config(
                &EgressPathConfig::new()
                    .connection_limit(1)
                    .max_message_rate("10/s")
                    .enable_tls(Tls::Required)
                    .smtp_auth_plain("relay-user", "smarthost")
                    .allow_smtp_auth_plain_without_tls(false)
                    .source_address("127.0.0.9")
                    .ehlo_domain(&ehlo),
            )
        }
        // The host's refusal is the handler's Err: its text names the unknown field.
        "typo.test" => e.make_egress_path_config_json(r#"{"conection_limit":1}"#),
        _ => Ok(()),
    }
}
