// The AssemblyScript SDK's version of the conformance plugin (../SPEC.md). Built by build.sh.
import {
  EgressPathConfig, EgressSite, Message, Queue, QueueConfig, Status, check, config, fail,
  makeEgressPathConfig, makeEgressPathConfigJSON, makeQueueConfig, makeQueueConfigJSON,
  onGetEgressPathConfig, onGetQueueConfig, onMessageReceived,
} from "../../assemblyscript/index";

export {
  wasmta_abi_v1, smtp_server_message_received, get_queue_config, get_egress_path_config,
} from "../../assemblyscript/index";

// must turns an unexpected host refusal into a failed hook (visible in the vectors).
let failed = false;
function must(rc: i32): void {
  if (rc < 0) failed = true;
}

function onMessage(m: Message): i32 {
  failed = false;
  const rcpt = m.recipient(0);
  const d = rcpt.substring(rcpt.lastIndexOf("@") + 1);

  // 1-3: failure and rejections.
  if (d == "fail.test") {
    m.setMeta("tenant", "leak");
    return fail("conformance failure");
  }
  if (d == "reject.test") return m.reject(550, "5.7.1 rejected by conformance");
  if (d == "reject4.test") return m.reject(451, "4.7.1 try later");

  // 4: routing.
  if (d == "routing.test") must(m.setMeta("routing_domain", "my.smarthost.test"));
  else if (d == "queue.test") must(m.setMeta("queue", "my.smarthost.test"));
  else if (d == "v4.test") must(m.setMeta("queue", "[127.0.0.5]"));
  else if (d == "v6.test") must(m.setMeta("routing_domain", "[IPv6:::1]"));
  else if (d == "nc.test") must(m.setMeta("routing_domain", "[::1]"));
  else if (d == "badliteral.test") {
    const st = m.setMeta("routing_domain", "[10.0.0.1");
    must(m.setMeta("literal_status", st.toString()));
  }

  // 5-9: reading.
  const subject = m.header("Subject", 0);
  if (subject !== null) must(m.setMeta("subject", subject));
  const inValue = m.meta("in");
  if (inValue !== null) must(m.setMeta("out", inValue));
  must(m.setMeta("sender", m.sender()));
  const n = m.recipientCount();
  must(m.setMeta("rcpts", n.toString()));
  must(m.setMeta("last_rcpt", m.recipient(n - 1)));
  must(m.setMeta("config", config()));

  // 10-11: header edits, and header injection refused.
  must(m.prependHeader("X-Conformance", "1"));
  must(m.appendHeader("X-Conformance-End", "1"));
  const inject = m.prependHeader("X-Bad", "a\r\nInjected: yes");
  must(m.setMeta("inject_status", inject.toString()));

  if (failed) return fail("conformance: a host call failed unexpectedly");
  return Status.OK;
}

function onQueueConfig(q: Queue): i32 {
  if (q.domain == "mx.test") {
    return makeQueueConfig(new QueueConfig()
      .retryInterval("5s")
      .mx("smart.host.local")
      .mxAddr("mx.example.com", "127.0.0.3"));
  }
  if (q.domain == "badcfg.test") {
    if (makeQueueConfigJSON('{"mx_lsit":["x"]}') < 0) return fail("bad config refused");
  }
  return 0;
}

function onEgressPathConfig(s: EgressSite): i32 {
  if (s.routingDomain == "smarthost.test") {
    return makeEgressPathConfig(new EgressPathConfig()
      .connectionLimit(1)
      .maxMessageRate("10/s")
      .enableTLS("Required")
      .smtpAuthPlain("relay-user", "smarthost")
      .allowSMTPAuthPlainWithoutTLS(false)
      .sourceAddress("127.0.0.9")
      .ehloDomain("out." + s.site));
  }
  if (s.routingDomain == "typo.test") {
    // refused: check() fails the hook with the host's reason, which names the field
    return check("make_egress_path_config", makeEgressPathConfigJSON('{"conection_limit":1}'));
  }
  return 0;
}

onMessageReceived(onMessage);
onGetQueueConfig(onQueueConfig);
onGetEgressPathConfig(onEgressPathConfig);
