// Answers get_egress_path_config with every field of the builder (wasmta_test.go checks what the
// host decodes), a misspelt document, or no opinion.
import {
  EgressPathConfig, EgressSite, check, makeEgressPathConfig, makeEgressPathConfigJSON,
  onGetEgressPathConfig,
} from "../index";

export { wasmta_abi_v1, get_egress_path_config } from "../index";

onGetEgressPathConfig((s: EgressSite): i32 => {
  if (s.routingDomain == "every.test") {
    return makeEgressPathConfig(new EgressPathConfig()
      .connectionLimit(3)
      .maxDeliveriesPerConnection(100)
      .maxMessageRate("100/s,max_burst=10")
      .maxConnectionRate("5/m")
      .enableTLS("RequiredInsecure")
      .smtpAuthPlain("relay-user", "smarthost")
      .allowSMTPAuthPlainWithoutTLS(true)
      .ehloDomain("out." + s.site)
      .sourceAddress("127.0.0.9")
      .smtpPort(2525)
      .connectTimeout("1500ms")
      .commandTimeout("1m")
      .dataTimeout("10m")
      .idleTimeout("90s"));
  }
  if (s.routingDomain == "typo.test") {
    return check("make_egress_path_config", makeEgressPathConfigJSON('{"conection_limit":1}'));
  }
  return 0; // no opinion
});
