// wasmta AssemblyScript SDK: write wasmta policy plugins (ABI v1, abi/ABI.md) in AssemblyScript.
//
// A plugin registers its handlers at top level (run by the module's start function) and
// re-exports the marker and the hooks it implements from its entry file:
//
//   import { Message, onMessageReceived } from "wasmta-sdk";
//   export { wasmta_abi_v1, smtp_server_message_received } from "wasmta-sdk";
//   onMessageReceived((m: Message): i32 => m.setMeta("routing_domain", "my.smarthost.com"));
//
// Build (README.md has the whole recipe):
//   npx asc assembly/index.ts -O3 --runtime incremental \
//     --use abort=~lib/wasmta-sdk/index/wasmta_abort -o plugin.wasm
//
// Handlers return an i32: 0 applies everything they staged, anything else (for example a negative
// status returned by a host call) fails the hook and applies nothing. AssemblyScript has no
// exceptions, so errors are statuses: every host call wrapper returns the ABI status, and fail()
// and check() turn a failure into a hook result with a readable reason.
//
// The module imports only the "wasmta" functions a plugin actually uses. One instance runs one
// hook at a time, so the static buffers below need no locking. Do not call host functions at
// top level: the start function runs outside any hook.

// ---------------------------------------------------------------------------------------------
// ABI constants (abi/abi.go)

/** ABI version this SDK speaks: (major << 16) | minor. */
export const ABI_VERSION: i32 = 0x00010002; // 1.1: dkim_sign; 1.2: get_egress_path_config

/** Status codes returned by host calls. Non-negative results are lengths or counts. */
export enum Status {
  /** done */
  OK = 0,
  /** no such meta key, recipient index or header */
  NotFound = -1,
  /** malformed argument: bad key, CR/LF in a header, bad JSON, bad literal, bad reply code */
  Invalid = -2,
  /** call outside the hook it belongs to, or a feature not granted */
  NotAllowed = -3,
  /** a size or count limit */
  Limit = -4,
  /** known to the host but not implemented */
  Unimplemented = -5,
}

/** Log levels for log(). */
export enum LogLevel {
  Debug = -1,
  Info = 0,
  Warn = 1,
  Error = 2,
}

/** Feature bits for features(): prepend_header / append_header allowed. */
export const FeatureHeaderWrite: u64 = 1 << 0;
/** Feature bits for features(): get_body allowed. */
export const FeatureBodyRead: u64 = 1 << 1;

// Limits enforced by the host (ABI.md §6).
export const MaxMetaKey: i32 = 64;
export const MaxMetaValue: i32 = 1024;
export const MaxMetaKeys: i32 = 64;
export const MaxHeaderName: i32 = 76;
export const MaxHeaderValue: i32 = 998;
export const MaxHeaderEdits: i32 = 32;
export const MaxQueueConfig: i32 = 64 << 10;
export const MaxEgressPathConfig: i32 = 16 << 10;
export const MaxLogLine: i32 = 4 << 10;
export const MaxRejectText: i32 = 512;
export const MaxErrorText: i32 = 1024;

// ---------------------------------------------------------------------------------------------
// Host functions, module "wasmta" (ABI.md §4). Strings are (ptr, len) of UTF-8 bytes; receiving
// calls take (buf, limit) and return the full length n, writing the bytes only if n <= limit.
// They are exported for plugins that want the raw calls; the wrappers below are easier.

export namespace host {
  // @ts-ignore: decorator
  @external("wasmta", "abi_version")
  export declare function abi_version(): i32;
  // @ts-ignore: decorator
  @external("wasmta", "features")
  export declare function features(want: i64): i64;
  // @ts-ignore: decorator
  @external("wasmta", "log")
  export declare function log(level: i32, ptr: usize, len: i32): void;
  // @ts-ignore: decorator
  @external("wasmta", "get_config")
  export declare function get_config(buf: usize, limit: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "set_error")
  export declare function set_error(ptr: usize, len: i32): void;
  // @ts-ignore: decorator
  @external("wasmta", "last_error")
  export declare function last_error(buf: usize, limit: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "get_meta")
  export declare function get_meta(key: usize, keyLen: i32, buf: usize, limit: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "set_meta")
  export declare function set_meta(key: usize, keyLen: i32, val: usize, valLen: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "get_sender")
  export declare function get_sender(buf: usize, limit: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "recipient_count")
  export declare function recipient_count(): i32;
  // @ts-ignore: decorator
  @external("wasmta", "get_recipient")
  export declare function get_recipient(idx: i32, buf: usize, limit: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "get_header")
  export declare function get_header(name: usize, nameLen: i32, idx: i32, buf: usize, limit: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "prepend_header")
  export declare function prepend_header(name: usize, nameLen: i32, val: usize, valLen: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "append_header")
  export declare function append_header(name: usize, nameLen: i32, val: usize, valLen: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "get_body")
  export declare function get_body(buf: usize, limit: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "reject")
  export declare function reject(code: i32, text: usize, textLen: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "make_queue_config")
  export declare function make_queue_config(json: usize, jsonLen: i32): i32;
  // @ts-ignore: decorator
  @external("wasmta", "dkim_sign")
  export declare function dkim_sign(json: usize, jsonLen: i32): i32;

  // ABI 1.2, get_egress_path_config only. Like every import here, it is in the module only if
  // the plugin calls it, so plugins without the hook still load on ABI 1.1 hosts.
  @external("wasmta", "make_egress_path_config")
  export declare function make_egress_path_config(json: usize, jsonLen: i32): i32;
}

// ---------------------------------------------------------------------------------------------
// Memory protocol. Arguments are encoded into a static buffer (no allocation) when they fit;
// answers land in a static scratch buffer first and are retried once with a buffer of the
// announced size when they do not fit. Static memory is outside the GC heap.

const SCRATCH_SIZE: i32 = 4096;
const SCRATCH: usize = memory.data(SCRATCH_SIZE, 16);
const ARGS_SIZE: i32 = 4096;
const ARGS: usize = memory.data(ARGS_SIZE, 16);

// The current call's string arguments (pointer, UTF-8 length) and index argument.
let arg0: usize = 0;
let len0: i32 = 0;
let arg1: usize = 0;
let len1: i32 = 0;
let argIdx: i32 = 0;
// Arguments too large for ARGS live here, rooted for the GC until the call is done.
let spill0: ArrayBuffer | null = null;
let spill1: ArrayBuffer | null = null;
// Where the last answer is (SCRATCH or recvBuf), and the larger buffer of a retry.
let recvPtr: usize = 0;
let recvBuf: ArrayBuffer | null = null;

// @ts-ignore: decorator
@inline
function put(s: string, dst: usize): i32 {
  // Lone surrogates become U+FFFD: the host accepts only valid UTF-8.
  return <i32>String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, dst, false, String.UTF8.ErrorMode.REPLACE);
}

function fits(a: string, b: string): bool {
  // 3 bytes per UTF-16 unit is the worst case; count exactly only when that bound is too big.
  if ((a.length + b.length) * 3 <= ARGS_SIZE) return true;
  return String.UTF8.byteLength(a) + String.UTF8.byteLength(b) <= ARGS_SIZE;
}

function spill(s: string): ArrayBuffer {
  const buf = new ArrayBuffer(String.UTF8.byteLength(s));
  put(s, changetype<usize>(buf));
  return buf;
}

/** Encodes one string argument into (arg0, len0). */
function args1(a: string): void {
  if (fits(a, "")) {
    arg0 = ARGS;
    len0 = put(a, ARGS);
  } else {
    const b = spill(a);
    spill0 = b;
    arg0 = changetype<usize>(b);
    len0 = b.byteLength;
  }
}

/** Encodes two string arguments into (arg0, len0) and (arg1, len1). */
function args2(a: string, b: string): void {
  if (fits(a, b)) {
    arg0 = ARGS;
    len0 = put(a, ARGS);
    arg1 = ARGS + <usize>len0;
    len1 = put(b, arg1);
  } else {
    const x = spill(a);
    const y = spill(b);
    spill0 = x;
    spill1 = y;
    arg0 = changetype<usize>(x);
    len0 = x.byteLength;
    arg1 = changetype<usize>(y);
    len1 = y.byteLength;
  }
}

function done(rc: i32): i32 {
  spill0 = null;
  spill1 = null;
  return rc;
}

type Receiver = (buf: usize, limit: i32) => i32;

// One function per receiving host call, reading its other arguments from the globals above, so
// that a plugin imports only the host functions it uses.
function rxConfig(buf: usize, limit: i32): i32 { return host.get_config(buf, limit); }
function rxLastError(buf: usize, limit: i32): i32 { return host.last_error(buf, limit); }
function rxMeta(buf: usize, limit: i32): i32 { return host.get_meta(arg0, len0, buf, limit); }
function rxSender(buf: usize, limit: i32): i32 { return host.get_sender(buf, limit); }
function rxRecipient(buf: usize, limit: i32): i32 { return host.get_recipient(argIdx, buf, limit); }
function rxHeader(buf: usize, limit: i32): i32 { return host.get_header(arg0, len0, argIdx, buf, limit); }
function rxBody(buf: usize, limit: i32): i32 { return host.get_body(buf, limit); }

/**
 * Runs a (buf, limit) host call: first into the scratch buffer, then, if the answer is larger,
 * once more into a buffer of the announced size. Returns the length (the bytes are at recvPtr)
 * or a negative status.
 */
function recv(f: Receiver): i32 {
  let n = f(SCRATCH, SCRATCH_SIZE);
  recvPtr = SCRATCH;
  if (n > SCRATCH_SIZE) {
    const big = new ArrayBuffer(n);
    recvBuf = big;
    const m = f(changetype<usize>(big), n);
    if (m > n) return Status.Limit; // cannot happen: the host's data is fixed during a call
    recvPtr = changetype<usize>(big);
    n = m;
  }
  return n;
}

/** The last answer as a string ("" for a negative status), releasing the retry buffer. */
function recvString(n: i32): string {
  const s = n > 0 ? String.UTF8.decodeUnsafe(recvPtr, <usize>n) : "";
  recvBuf = null;
  return s;
}

/** The last answer as bytes, releasing the retry buffer. */
function recvBytes(n: i32): Uint8Array {
  const out = new Uint8Array(max(n, 0));
  if (n > 0) memory.copy(out.dataStart, recvPtr, <usize>n);
  recvBuf = null;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Errors and diagnostics

let errorSet = false;

/** A short name for a status code. */
export function statusText(status: i32): string {
  switch (status) {
    case Status.OK: return "ok";
    case Status.NotFound: return "not found";
    case Status.Invalid: return "invalid argument";
    case Status.NotAllowed: return "not allowed here";
    case Status.Limit: return "limit exceeded";
    case Status.Unimplemented: return "not implemented by this host";
  }
  return "status " + status.toString();
}

/** The host's explanation of the last negative status in this call, or "". */
export function lastError(): string {
  return recvString(recv(rxLastError));
}

/** Sets the reason logged when the hook (or wasmta_init) returns non-zero (at most 1 KiB kept). */
export function setError(text: string): void {
  args1(text);
  host.set_error(arg0, len0);
  done(0);
  errorSet = true;
}

/** Fails the hook with a reason: `return fail("no route for " + d);`. Returns 1. */
export function fail(text: string): i32 {
  setError(text);
  return 1;
}

/**
 * Turns a host call's status into a hook result: 0 when status >= 0, otherwise sets the error
 * "wasmta: OP: <status text>: <host explanation>" and returns 1.
 *
 *   let rc = check("set_meta", m.setMeta("tenant", t)); if (rc != 0) return rc;
 */
export function check(op: string, status: i32): i32 {
  if (status >= 0) return 0;
  return fail(describe(op, status));
}

function describe(op: string, status: i32): string {
  let s = "wasmta: " + op + ": " + statusText(status);
  const why = lastError();
  if (why.length > 0) s += ": " + why;
  return s;
}

/** Writes a line to the server's diagnostics, tagged with the plugin and hook (cut at 4 KiB). */
export function log(level: i32, msg: string): void {
  args1(msg);
  host.log(level, arg0, len0);
  done(0);
}
export function logDebug(msg: string): void { log(LogLevel.Debug, msg); }
export function logInfo(msg: string): void { log(LogLevel.Info, msg); }
export function logWarn(msg: string): void { log(LogLevel.Warn, msg); }
export function logError(msg: string): void { log(LogLevel.Error, msg); }

/** The host's ABI version, (major << 16) | minor. */
export function abiVersion(): i32 {
  return host.abi_version();
}

/** The subset of `want` (Feature* bits) the host grants. */
export function features(want: u64): u64 {
  return <u64>host.features(<i64>want);
}

// ---------------------------------------------------------------------------------------------
// Plugin config

/** The plugin's own config: its [plugins.config] table as a JSON object ("{}" when absent). */
export function config(): string {
  const n = recv(rxConfig);
  return n < 0 ? "{}" : recvString(n);
}

/** A top-level string field of the plugin's config, or null (see jsonGetString). */
export function configString(key: string): string | null {
  return jsonGetString(config(), key);
}

// ---------------------------------------------------------------------------------------------
// Message hooks

/**
 * The message a message hook runs for. Changes are staged and take effect only if the handler
 * returns 0. Methods that change something return the ABI status (0 or negative).
 */
export class Message {
  /** A meta value, or null when it is not set. */
  meta(key: string): string | null {
    args1(key);
    const n = recv(rxMeta);
    done(0);
    if (n < 0) return null;
    return recvString(n);
  }

  /**
   * Sets a meta value (staged). routing_domain and queue are checked at once: a malformed domain
   * or literal returns Status.Invalid here, not a bounce later.
   */
  setMeta(key: string, value: string): i32 {
    args2(key, value);
    return done(host.set_meta(arg0, len0, arg1, len1));
  }

  /** The envelope sender ("" for the null sender <>). */
  sender(): string {
    return recvString(recv(rxSender));
  }

  /** The number of envelope recipients. */
  recipientCount(): i32 {
    return max(host.recipient_count(), 0);
  }

  /** Envelope recipient i (0-based), or "" when out of range. */
  recipient(i: i32): string {
    argIdx = i;
    return recvString(recv(rxRecipient));
  }

  /** Every envelope recipient. */
  recipients(): string[] {
    const n = this.recipientCount();
    const out = new Array<string>(0);
    for (let i = 0; i < n; i++) {
      argIdx = i;
      const rc = recv(rxRecipient);
      if (rc >= 0) out.push(recvString(rc));
    }
    return out;
  }

  /**
   * The idx-th (0-based) header field named `name` (case-insensitive): the text after "Name:"
   * without leading whitespace, folding kept. null when there is no such field.
   */
  header(name: string, idx: i32 = 0): string | null {
    args1(name);
    argIdx = idx;
    const n = recv(rxHeader);
    done(0);
    if (n < 0) return null;
    return recvString(n);
  }

  /** Every field named `name`, in order. */
  headerValues(name: string): string[] {
    const out = new Array<string>(0);
    args1(name);
    for (let i = 0; ; i++) {
      argIdx = i;
      const n = recv(rxHeader);
      if (n < 0) break;
      out.push(recvString(n));
    }
    done(0);
    return out;
  }

  /** Stages a field at the top of the header. CR or LF in the value returns Status.Invalid. */
  prependHeader(name: string, value: string): i32 {
    args2(name, value);
    return done(host.prepend_header(arg0, len0, arg1, len1));
  }

  /** Stages a field at the end of the header. */
  appendHeader(name: string, value: string): i32 {
    args2(name, value);
    return done(host.append_header(arg0, len0, arg1, len1));
  }

  /** The body (after the header's blank line), or null on a negative status. */
  body(): Uint8Array | null {
    const n = recv(rxBody);
    if (n < 0) return null;
    return recvBytes(n);
  }

  /** The body decoded as UTF-8, or null on a negative status. */
  bodyText(): string | null {
    const n = recv(rxBody);
    if (n < 0) return null;
    return recvString(n);
  }

  /**
   * Refuses the message (staged) with an SMTP code 400-599 and text, which may start with an
   * enhanced status code: `return m.reject(550, "5.7.1 not from here");`. Later plugins are not
   * run.
   */
  reject(code: i32, text: string): i32 {
    args1(text);
    return done(host.reject(code, arg0, len0));
  }

  /**
   * Asks the host (ABI 1.1) to DKIM-sign the message with a [[dkim]] key of the server config,
   * by name: `m.dkimSignJSON('{"key":"main","domain":"example.com","selector":"s2026"}')` (ABI.md,
   * dkim_sign). Staged; the host signs after the whole plugin chain ran. Returns the status:
   * Status.Invalid with lastError() naming an unknown key or field.
   */
  dkimSignJSON(json: string): i32 {
    args1(json);
    return done(host.dkim_sign(arg0, len0));
  }
}

// ---------------------------------------------------------------------------------------------
// Queue config hook

/** The scheduled queue get_queue_config is asked about ("" for absent parts). */
export class Queue {
  /** the full queue name */
  name: string = "";
  domain: string = "";
  tenant: string = "";
  campaign: string = "";
  routingDomain: string = "";
}

function queueInput(key: string): string {
  args1(key);
  const n = recv(rxMeta);
  done(0);
  return n < 0 ? "" : recvString(n);
}

/**
 * A queue's delivery config, written as the JSON document make_queue_config takes (ABI.md,
 * make_queue_config). Fields left unset keep the server's [queue] defaults. Setters chain:
 *
 *   new QueueConfig().retryInterval("5s").mx("smart.host.local").mxAddr("mx.example.com", "10.0.0.3")
 */
export class QueueConfig {
  private retry: string | null = null;
  private maxRetry: string | null = null;
  private age: string | null = null;
  private rate: string | null = null;
  private pool: string | null = null;
  private mxs: string[] = [];

  /** First retry delay, a duration string ("90s", "20m", "7d"); each next one doubles. */
  retryInterval(d: string): QueueConfig { this.retry = jsonQuote(d); return this; }
  /** First retry delay in seconds. */
  retryIntervalSeconds(s: i64): QueueConfig { this.retry = s.toString(); return this; }
  /** Cap on one retry delay. */
  maxRetryInterval(d: string): QueueConfig { this.maxRetry = jsonQuote(d); return this; }
  maxRetryIntervalSeconds(s: i64): QueueConfig { this.maxRetry = s.toString(); return this; }
  /** Expire when the next attempt would be later than this after reception. */
  maxAge(d: string): QueueConfig { this.age = jsonQuote(d); return this; }
  maxAgeSeconds(s: i64): QueueConfig { this.age = s.toString(); return this; }
  /** Accepted and validated for KumoMTA compatibility ("100/s"); not enforced yet. */
  maxMessageRate(r: string): QueueConfig { this.rate = jsonQuote(r); return this; }
  /** Accepted and validated for KumoMTA compatibility; not enforced yet. */
  egressPool(p: string): QueueConfig { this.pool = jsonQuote(p); return this; }

  /**
   * Appends an mx_list entry (mx_list replaces MX resolution; entries are tried in order): a
   * host name, "host:port" or a literal ("[10.0.0.1]", "[IPv6:::1]").
   */
  mx(name: string): QueueConfig { this.mxs.push(jsonQuote(name)); return this; }
  /** Appends an mx_list entry that connects to `addr` and uses `name` for TLS and logs. */
  mxAddr(name: string, addr: string): QueueConfig {
    this.mxs.push('{"name":' + jsonQuote(name) + ',"addr":' + jsonQuote(addr) + "}");
    return this;
  }

  /** The JSON document. */
  toJSON(): string {
    const parts = new Array<string>(0);
    field(parts, "retry_interval", this.retry);
    field(parts, "max_retry_interval", this.maxRetry);
    field(parts, "max_age", this.age);
    field(parts, "max_message_rate", this.rate);
    field(parts, "egress_pool", this.pool);
    if (this.mxs.length > 0) {
      parts.push('"protocol":{"smtp":{"mx_list":[' + this.mxs.join(",") + "]}}");
    }
    return "{" + parts.join(",") + "}";
  }
}

function field(parts: string[], name: string, value: string | null): void {
  if (value !== null) parts.push('"' + name + '":' + value);
}

/**
 * Hands a queue config to the host (get_queue_config only) and returns the status: 0, or
 * Status.Invalid with lastError() naming the problem (`queue config: json: unknown field ...`).
 */
export function makeQueueConfig(cfg: QueueConfig): i32 {
  return makeQueueConfigJSON(cfg.toJSON());
}

/** Hands a ready-made queue config document (JSON) to the host and returns the status. */
export function makeQueueConfigJSON(json: string): i32 {
  args1(json);
  return done(host.make_queue_config(arg0, len0));
}

// ---------------------------------------------------------------------------------------------
// Egress path config hook (ABI 1.2)

/**
 * The egress path get_egress_path_config is asked about: the site (the MX hosts, or the literal,
 * a routing domain's messages go to) and the routing domain of the message that first reached it.
 */
export class EgressSite {
  routingDomain: string = "";
  site: string = "";
}

/**
 * An egress path's settings, written as the JSON document make_egress_path_config takes, with
 * the names of the server's [egress] table (ABI.md, make_egress_path_config). Fields left unset
 * keep what the server's config gives the destination ([[egress.path]], then [egress]). Setters
 * chain:
 *
 *   new EgressPathConfig().connectionLimit(2).enableTLS("Required").smtpAuthPlain("relay-user", "smarthost")
 */
export class EgressPathConfig {
  private limit: string | null = null;
  private perConn: string | null = null;
  private msgRate: string | null = null;
  private connRate: string | null = null;
  private tls: string | null = null;
  private user: string | null = null;
  private secret: string | null = null;
  private plainOK: string | null = null;
  private ehlo: string | null = null;
  private source: string | null = null;
  private port: string | null = null;
  private connectT: string | null = null;
  private commandT: string | null = null;
  private dataT: string | null = null;
  private idleT: string | null = null;

  /** Connections open at once to the site, all its hosts together (> 0). */
  connectionLimit(n: i32): EgressPathConfig { this.limit = n.toString(); return this; }
  /** Messages per connection before it is closed and a new one opened (> 0). */
  maxDeliveriesPerConnection(n: i32): EgressPathConfig { this.perConn = n.toString(); return this; }
  /** Messages handed to the site's connections: "N/period[,max_burst=M]" ("100/s"). */
  maxMessageRate(r: string): EgressPathConfig { this.msgRate = jsonQuote(r); return this; }
  /** New connections to the site, same syntax. */
  maxConnectionRate(r: string): EgressPathConfig { this.connRate = jsonQuote(r); return this; }
  /** "Opportunistic", "OpportunisticInsecure", "Required", "RequiredInsecure" or "Disabled". */
  enableTLS(mode: string): EgressPathConfig { this.tls = jsonQuote(mode); return this; }
  /**
   * AUTH to the site (RFC 4954): the user name and the NAME of a [secrets] entry of the server
   * config, never the password itself.
   */
  smtpAuthPlain(username: string, secretName: string): EgressPathConfig {
    this.user = jsonQuote(username);
    this.secret = jsonQuote(secretName);
    return this;
  }
  /** Send the credentials over a connection without TLS. */
  allowSMTPAuthPlainWithoutTLS(allow: bool): EgressPathConfig { this.plainOK = allow ? "true" : "false"; return this; }
  /** The EHLO name: a domain or an address literal ("[192.0.2.1]"). */
  ehloDomain(name: string): EgressPathConfig { this.ehlo = jsonQuote(name); return this; }
  /** The local IP address connections leave from. */
  sourceAddress(addr: string): EgressPathConfig { this.source = jsonQuote(addr); return this; }
  /** The port connected to when the destination names none. */
  smtpPort(p: i32): EgressPathConfig { this.port = p.toString(); return this; }
  /** The TCP connect to each host, a duration string ("10s"). */
  connectTimeout(d: string): EgressPathConfig { this.connectT = jsonQuote(d); return this; }
  /** Every reply but the one to the final dot, and every command write. */
  commandTimeout(d: string): EgressPathConfig { this.commandT = jsonQuote(d); return this; }
  /** Writing the body, and the reply to its final dot. */
  dataTimeout(d: string): EgressPathConfig { this.dataT = jsonQuote(d); return this; }
  /** How long an unused connection stays open for the next message. */
  idleTimeout(d: string): EgressPathConfig { this.idleT = jsonQuote(d); return this; }

  /** The JSON document, fields in the order of the ABI's table. */
  toJSON(): string {
    const parts = new Array<string>(0);
    field(parts, "connection_limit", this.limit);
    field(parts, "max_deliveries_per_connection", this.perConn);
    field(parts, "max_message_rate", this.msgRate);
    field(parts, "max_connection_rate", this.connRate);
    field(parts, "enable_tls", this.tls);
    field(parts, "smtp_auth_plain_username", this.user);
    field(parts, "smtp_auth_plain_password", this.secret);
    field(parts, "allow_smtp_auth_plain_without_tls", this.plainOK);
    field(parts, "ehlo_domain", this.ehlo);
    field(parts, "source_address", this.source);
    field(parts, "smtp_port", this.port);
    field(parts, "connect_timeout", this.connectT);
    field(parts, "command_timeout", this.commandT);
    field(parts, "data_timeout", this.dataT);
    field(parts, "idle_timeout", this.idleT);
    return "{" + parts.join(",") + "}";
  }
}

/**
 * Hands an egress path config to the host (get_egress_path_config only) and returns the status:
 * 0, or Status.Invalid with lastError() naming the problem (`egress path config: json: unknown
 * field "conection_limit"`, a bad value, a password that names no secret).
 */
export function makeEgressPathConfig(cfg: EgressPathConfig): i32 {
  return makeEgressPathConfigJSON(cfg.toJSON());
}

/** Hands a ready-made egress path config document (JSON) to the host and returns the status. */
export function makeEgressPathConfigJSON(json: string): i32 {
  args1(json);
  return done(host.make_egress_path_config(arg0, len0));
}

// ---------------------------------------------------------------------------------------------
// JSON helpers

const HEX = "0123456789abcdef";

/** `s` as a JSON string literal, quotes included, with ", \ and control characters escaped. */
export function jsonQuote(s: string): string {
  let clean = true;
  for (let i = 0, n = s.length; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c == 0x22 || c == 0x5c) { clean = false; break; }
  }
  if (clean) return '"' + s + '"';
  const parts = new Array<string>(0);
  parts.push('"');
  let start = 0;
  for (let i = 0, n = s.length; i < n; i++) {
    const c = s.charCodeAt(i);
    let esc: string | null = null;
    if (c == 0x22) esc = '\\"';
    else if (c == 0x5c) esc = "\\\\";
    else if (c == 0x0a) esc = "\\n";
    else if (c == 0x0d) esc = "\\r";
    else if (c == 0x09) esc = "\\t";
    else if (c == 0x08) esc = "\\b";
    else if (c == 0x0c) esc = "\\f";
    else if (c < 0x20) esc = "\\u00" + HEX.charAt(c >> 4) + HEX.charAt(c & 15);
    if (esc !== null) {
      if (i > start) parts.push(s.substring(start, i));
      parts.push(esc);
      start = i + 1;
    }
  }
  if (s.length > start) parts.push(s.substring(start));
  parts.push('"');
  return parts.join("");
}

function isSpace(c: i32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

function skipSpace(s: string, i: i32): i32 {
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  return i;
}

/** End of the JSON string literal starting at s[i] == '"' (index after the closing quote), or -1. */
function skipString(s: string, i: i32): i32 {
  for (i++; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x5c) i++;
    else if (c == 0x22) return i + 1;
  }
  return -1;
}

/** End of the JSON value starting at s[i], or -1 when malformed. */
function skipValue(s: string, i: i32): i32 {
  if (i >= s.length) return -1;
  const c = s.charCodeAt(i);
  if (c == 0x22) return skipString(s, i);
  if (c == 0x7b || c == 0x5b) { // { or [: match brackets, skipping strings
    let depth = 0;
    while (i < s.length) {
      const d = s.charCodeAt(i);
      if (d == 0x22) {
        i = skipString(s, i);
        if (i < 0) return -1;
        continue;
      }
      if (d == 0x7b || d == 0x5b) depth++;
      else if (d == 0x7d || d == 0x5d) {
        depth--;
        if (depth == 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
  // number, true, false, null
  const start = i;
  while (i < s.length) {
    const d = s.charCodeAt(i);
    if (d == 0x2c || d == 0x7d || d == 0x5d || isSpace(d)) break;
    i++;
  }
  return i > start ? i : -1;
}

/** Decodes the JSON string literal s[i:end] (quotes included). */
function decodeString(s: string, i: i32, end: i32): string {
  const parts = new Array<string>(0);
  let start = i + 1;
  const last = end - 1;
  for (let j = start; j < last; j++) {
    if (s.charCodeAt(j) != 0x5c) continue;
    if (j > start) parts.push(s.substring(start, j));
    j++;
    const e = s.charCodeAt(j);
    if (e == 0x6e) parts.push("\n");
    else if (e == 0x72) parts.push("\r");
    else if (e == 0x74) parts.push("\t");
    else if (e == 0x62) parts.push("\b");
    else if (e == 0x66) parts.push("\f");
    else if (e == 0x75 && j + 4 < last) {
      parts.push(String.fromCharCode(<i32>I32.parseInt(s.substring(j + 1, j + 5), 16)));
      j += 4;
    } else parts.push(String.fromCharCode(e)); // \" \\ \/
    start = j + 1;
  }
  if (last > start) parts.push(s.substring(start, last));
  return parts.join("");
}

/**
 * The raw JSON text of top-level field `key` of the JSON object `doc` (for example `"x"`, `42`,
 * `{"a":1}`), or null when absent or malformed. Nested objects: apply it again to the result.
 */
export function jsonGet(doc: string, key: string): string | null {
  let i = skipSpace(doc, 0);
  if (i >= doc.length || doc.charCodeAt(i) != 0x7b) return null;
  i = skipSpace(doc, i + 1);
  while (i < doc.length && doc.charCodeAt(i) == 0x22) {
    const kend = skipString(doc, i);
    if (kend < 0) return null;
    const k = decodeString(doc, i, kend);
    i = skipSpace(doc, kend);
    if (i >= doc.length || doc.charCodeAt(i) != 0x3a) return null;
    i = skipSpace(doc, i + 1);
    const vend = skipValue(doc, i);
    if (vend < 0) return null;
    if (k == key) return doc.substring(i, vend);
    i = skipSpace(doc, vend);
    if (i < doc.length && doc.charCodeAt(i) == 0x2c) i = skipSpace(doc, i + 1);
  }
  return null;
}

/** Top-level string field `key` of the JSON object `doc`, decoded; null when absent or not a string. */
export function jsonGetString(doc: string, key: string): string | null {
  const raw = jsonGet(doc, key);
  if (raw === null || raw.length < 2 || raw.charCodeAt(0) != 0x22) return null;
  return decodeString(raw, 0, raw.length);
}

// ---------------------------------------------------------------------------------------------
// Handlers and exports

/** A message hook handler: 0 applies what it staged; anything else fails the hook. */
export type MessageHandler = (m: Message) => i32;
/** A queue config handler: call makeQueueConfig and return its status, or 0 for "no opinion". */
export type QueueConfigHandler = (q: Queue) => i32;
/**
 * An egress path config handler (ABI 1.2): call makeEgressPathConfig and return its status, or 0
 * for "no opinion".
 */
export type EgressPathConfigHandler = (s: EgressSite) => i32;
/** An init handler: 0 = ready; anything else refuses the plugin (with the fail() text). */
export type InitHandler = () => i32;

let initHandler: InitHandler | null = null;
let messageReceivedHandler: MessageHandler | null = null;
let messageGeneratedHandler: MessageHandler | null = null;
let queueConfigHandler: QueueConfigHandler | null = null;
let egressPathConfigHandler: EgressPathConfigHandler | null = null;

/** Registers the wasmta_init handler: run once per instance, before any hook. */
export function onInit(f: InitHandler): void { initHandler = f; }
/** Registers the smtp_server_message_received handler. */
export function onMessageReceived(f: MessageHandler): void { messageReceivedHandler = f; }
/** Registers the http_message_generated handler (HTTP injection). */
export function onHTTPMessageGenerated(f: MessageHandler): void { messageGeneratedHandler = f; }
/** Registers the get_queue_config handler. */
export function onGetQueueConfig(f: QueueConfigHandler): void { queueConfigHandler = f; }
/**
 * Registers the get_egress_path_config handler (ABI 1.2); re-export get_egress_path_config too.
 * Only a plugin that calls makeEgressPathConfig imports make_egress_path_config (ABI 1.2): the
 * others still load on ABI 1.1 hosts.
 */
export function onGetEgressPathConfig(f: EgressPathConfigHandler): void { egressPathConfigHandler = f; }

const MESSAGE = new Message();

/** Gives a failing hook a reason when the handler did not set one, and frees garbage. */
function finish(rc: i32): i32 {
  if (rc != 0 && !errorSet) {
    if (rc < 0) setError(describe("hook", rc));
    else setError("wasmta: hook returned " + rc.toString());
  }
  errorSet = false;
  recvBuf = null;
  // The minimal runtime collects only when asked; the incremental one needs nothing.
  if (ASC_RUNTIME == 1) __collect();
  return rc;
}

function runMessage(h: MessageHandler | null): i32 {
  errorSet = false;
  if (h === null) return 0;
  return finish(h(MESSAGE));
}

/** The ABI v1 marker. Re-export it from your entry file. */
export function wasmta_abi_v1(): void {}

/** Runs the onInit handler. Re-export it only if you register one. */
export function wasmta_init(): i32 {
  errorSet = false;
  const h = initHandler;
  if (h === null) return 0;
  return finish(h());
}

/** Runs the onMessageReceived handler. */
export function smtp_server_message_received(): i32 {
  return runMessage(messageReceivedHandler);
}

/** Runs the onHTTPMessageGenerated handler. */
export function http_message_generated(): i32 {
  return runMessage(messageGeneratedHandler);
}

/** Runs the onGetQueueConfig handler with the queue's parsed name. */
export function get_queue_config(): i32 {
  errorSet = false;
  const h = queueConfigHandler;
  if (h === null) return 0;
  const q = new Queue();
  q.name = queueInput("queue");
  q.domain = queueInput("domain");
  q.tenant = queueInput("tenant");
  q.campaign = queueInput("campaign");
  q.routingDomain = queueInput("routing_domain");
  return finish(h(q));
}

/** Runs the onGetEgressPathConfig handler with the routing domain and the site. */
export function get_egress_path_config(): i32 {
  errorSet = false;
  const h = egressPathConfigHandler;
  if (h === null) return 0;
  const s = new EgressSite();
  s.routingDomain = queueInput("routing_domain");
  s.site = queueInput("site");
  return finish(h(s));
}

// ---------------------------------------------------------------------------------------------
// abort: build with `--use abort=~lib/wasmta-sdk/index/wasmta_abort` (the path of this file
// inside the compilation, without ".ts", then the function name) to replace AssemblyScript's
// default env.abort import, which the host refuses, with this function: it logs the reason and
// traps, so the host fails the call (451 4.3.0) and discards the instance. `--use abort=` (empty)
// traps without the message.

// The abort handler may be compiled before this file's globals are initialized, so it uses no
// global: its buffer is a function-local static of 1 KiB.

function abortPut(buf: usize, off: i32, s: string | null): i32 {
  if (s === null) return off;
  // At most 3 bytes per UTF-16 unit; long texts are cut. No allocation: the heap may be broken.
  const n = min(s.length, max((1024 - 32 - off) / 3, 0));
  return off + <i32>String.UTF8.encodeUnsafe(changetype<usize>(s), n, buf + <usize>off, false, String.UTF8.ErrorMode.REPLACE);
}

function abortPutNum(buf: usize, off: i32, v: u32): i32 {
  let digits = 1;
  for (let t = v; t >= 10; t /= 10) digits++;
  for (let k = digits - 1; k >= 0; k--) {
    store<u8>(buf + <usize>(off + k), <u8>(0x30 + v % 10));
    v /= 10;
  }
  return off + digits;
}

/** The abort handler for `--use abort=…/wasmta_abort`: logs "abort: MSG at FILE:LINE:COL" and traps. */
export function wasmta_abort(msg: string | null, file: string | null, line: u32, col: u32): void {
  const buf = memory.data(1024, 16);
  let off = abortPut(buf, 0, "abort: ");
  off = abortPut(buf, off, msg);
  off = abortPut(buf, off, " at ");
  off = abortPut(buf, off, file);
  store<u8>(buf + <usize>off, 0x3a); off++;
  off = abortPutNum(buf, off, line);
  store<u8>(buf + <usize>off, 0x3a); off++;
  off = abortPutNum(buf, off, col);
  host.log(LogLevel.Error, buf, off);
  host.set_error(buf, off);
  unreachable();
}
