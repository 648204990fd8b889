//! Rust SDK for wasmta policy plugins (ABI v1, `abi/ABI.md`).
//!
//! `no_std`, no allocator, no crates: one file built with plain `rustc` (Debian's 1.63 is
//! enough) for `wasm32-unknown-unknown`. See `sdk/rust/README.md` for the build commands.
//!
//! ```ignore
//! #![no_std]
//! use wasmta::{Error, Message};
//!
//! fn on_message(m: &mut Message) -> Result<(), Error> {
//!     if m.sender()? == "spam@bad.example" {
//!         return m.reject(550, "5.7.1 not from you");
//!     }
//!     m.set_meta("routing_domain", "my.smarthost.com")
//! }
//!
//! wasmta::plugin! { smtp_server_message_received: on_message }
//! ```
//!
//! # Memory
//!
//! Values the host hands over (meta, sender, headers, body, config, ...) are copied into one
//! static scratch buffer ([`SCRATCH_SIZE`] bytes) used as a bump arena, and returned as `&str` /
//! `&[u8]` borrowing the hook's context (`&Message`, `&Queue`, `&Host`). They stay valid for the
//! whole hook call, so `m.set_meta("out", m.meta("in")?.unwrap_or(""))` just works. The arena is
//! reset when the hook returns; copy what you keep across calls (into a [`Text`] in a
//! [`Global`]). A value larger than what is left of the scratch buffer is fetched again
//! ((buf, limit) protocol: the host returns the full length) into pages obtained with
//! `memory.grow`, which are reused by later calls: nothing else is ever allocated.
//! [`Host::reset_scratch`] empties the arena mid-call (for loops over many values).
//!
//! # Errors
//!
//! Host calls return `Result<_, Error>`; an [`Error`] carries the ABI [`Status`] and the host's
//! explanation (`last_error`). `NotFound` is mapped to `Ok(None)` where absence is normal (meta,
//! headers, recipients). A handler returning `Err(e)` fails the hook: nothing it staged is
//! applied and `e`'s text is handed to `set_error`.
#![cfg_attr(not(test), no_std)]
#![allow(clippy::needless_lifetimes)]

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
compile_error!("the wasmta SDK assumes a single-threaded wasm32 module (no atomics/threads)");

use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

// ---------------------------------------------------------------------------------------------
// Constants (mirror package github.com/wasmta/wasmta/abi)

/// ABI version this SDK speaks: major in the high 16 bits, minor in the low (1.1: `dkim_sign`;
/// 1.2: `get_egress_path_config`, `make_egress_path_config`). A plugin needs only the version of
/// the calls it uses: the module imports nothing else.
pub const ABI_VERSION: u32 = 0x0001_0002;
/// `features` bit: `prepend_header` / `append_header` allowed.
pub const FEATURE_HEADER_WRITE: u64 = 1 << 0;
/// `features` bit: `get_body` allowed.
pub const FEATURE_BODY_READ: u64 = 1 << 1;

/// Host limits (ABI.md §6), for plugins that want to check before calling.
pub mod limits {
    pub const MAX_META_KEY: usize = 64;
    pub const MAX_META_VALUE: usize = 1024;
    pub const MAX_META_KEYS: usize = 64;
    pub const MAX_HEADER_NAME: usize = 76;
    pub const MAX_HEADER_VALUE: usize = 998;
    pub const MAX_HEADER_EDITS: usize = 32;
    pub const MAX_QUEUE_CONFIG: usize = 64 << 10;
    pub const MAX_EGRESS_PATH_CONFIG: usize = 16 << 10;
    pub const MAX_LOG_LINE: usize = 4 << 10;
    pub const MAX_REJECT_TEXT: usize = 512;
    pub const MAX_ERROR_TEXT: usize = 1024;
}

/// Size of the static scratch buffer (bytes); larger values spill into grown memory pages.
pub const SCRATCH_SIZE: usize = 16 << 10;

/// Capacity of the text an [`Error`] carries (longer host explanations are cut).
pub const ERROR_TEXT_SIZE: usize = 256;

// ---------------------------------------------------------------------------------------------
// Raw host functions

/// The raw ABI v1 imports of module `wasmta` (ABI.md §4). Prefer the safe wrappers; these are
/// here for plugins that want the (buf, limit) protocol with their own buffers. Off wasm32
/// (unit tests of plugin logic on the build machine) they are stubs returning `Unimplemented`.
pub mod sys {
    macro_rules! imports {
        ($( $(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),*) $(-> $r:ty)?; )*) => {
            #[cfg(target_arch = "wasm32")]
            #[link(wasm_import_module = "wasmta")]
            extern "C" { $( $(#[$m])* pub fn $name($($a: $t),*) $(-> $r)?; )* }

            $(
                #[cfg(not(target_arch = "wasm32"))]
                $(#[$m])*
                #[allow(unused_variables)]
                pub unsafe fn $name($($a: $t),*) $(-> $r)? { Stub::stub() }
            )*
        };
    }

    imports! {
        /// `(major << 16) | minor`.
        fn abi_version() -> i32;
        /// `want ∩ granted`.
        fn features(want: i64) -> i64;
        fn log(level: i32, ptr: *const u8, len: usize);
        fn get_config(buf: *mut u8, limit: usize) -> i32;
        fn set_error(ptr: *const u8, len: usize);
        fn last_error(buf: *mut u8, limit: usize) -> i32;
        fn get_meta(key: *const u8, key_len: usize, buf: *mut u8, limit: usize) -> i32;
        fn set_meta(key: *const u8, key_len: usize, val: *const u8, val_len: usize) -> i32;
        fn get_sender(buf: *mut u8, limit: usize) -> i32;
        fn recipient_count() -> i32;
        fn get_recipient(idx: i32, buf: *mut u8, limit: usize) -> i32;
        fn get_header(name: *const u8, name_len: usize, idx: i32, buf: *mut u8, limit: usize) -> i32;
        fn prepend_header(name: *const u8, name_len: usize, val: *const u8, val_len: usize) -> i32;
        fn append_header(name: *const u8, name_len: usize, val: *const u8, val_len: usize) -> i32;
        fn get_body(buf: *mut u8, limit: usize) -> i32;
        fn reject(code: i32, text: *const u8, text_len: usize) -> i32;
        fn make_queue_config(json: *const u8, json_len: usize) -> i32;
        /// ABI 1.1. Importing it makes the plugin need an ABI 1.1 host.
        fn dkim_sign(json: *const u8, json_len: usize) -> i32;
        /// ABI 1.2, `get_egress_path_config` only. Imported only by plugins that call it (an
        /// extern fn nothing calls is not imported), so the others still load on ABI 1.1 hosts.
        fn make_egress_path_config(json: *const u8, json_len: usize) -> i32;
    }

    #[cfg(not(target_arch = "wasm32"))]
    trait Stub {
        fn stub() -> Self;
    }
    #[cfg(not(target_arch = "wasm32"))]
    impl Stub for i32 {
        fn stub() -> i32 {
            -5 // Unimplemented
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    impl Stub for i64 {
        fn stub() -> i64 {
            0 // no feature granted
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    impl Stub for () {
        fn stub() {}
    }
}

// ---------------------------------------------------------------------------------------------
// Status and Error

/// A negative ABI status (ABI.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// -1: no such meta key, recipient index or header.
    NotFound,
    /// -2: malformed argument (bad key, CR/LF in a header, bad JSON, bad literal, bad code).
    Invalid,
    /// -3: call outside the hook it belongs to, or a feature not granted.
    NotAllowed,
    /// -4: a size or count limit.
    Limit,
    /// -5: known to the host but not implemented.
    Unimplemented,
    /// Any other negative value (a newer host).
    Other(i32),
}

impl Status {
    /// The status for a host result, or `None` when `rc >= 0` (a length, count or OK).
    pub const fn from_code(rc: i32) -> Option<Status> {
        if rc >= 0 {
            return None;
        }
        Some(match rc {
            -1 => Status::NotFound,
            -2 => Status::Invalid,
            -3 => Status::NotAllowed,
            -4 => Status::Limit,
            -5 => Status::Unimplemented,
            n => Status::Other(n),
        })
    }

    /// The ABI value (-1 … -5).
    pub const fn code(self) -> i32 {
        match self {
            Status::NotFound => -1,
            Status::Invalid => -2,
            Status::NotAllowed => -3,
            Status::Limit => -4,
            Status::Unimplemented => -5,
            Status::Other(n) => n,
        }
    }

    /// A short description ("not found", "invalid argument", ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::NotFound => "not found",
            Status::Invalid => "invalid argument",
            Status::NotAllowed => "not allowed here",
            Status::Limit => "limit exceeded",
            Status::Unimplemented => "not implemented by this host",
            Status::Other(_) => "unknown status",
        }
    }
}

/// A failed host call (its operation, [`Status`] and the host's explanation), or an error made
/// by the plugin with [`Error::msg`] / [`Error::from_args`]. Returning it from a handler fails the
/// hook with its text ([`Error::write_text`]) as the `set_error` reason.
#[derive(Clone)]
pub struct Error {
    status: Option<Status>,
    op: &'static str,
    text: Text<ERROR_TEXT_SIZE>,
}

impl Error {
    /// A plugin error with this text (cut at [`ERROR_TEXT_SIZE`] bytes).
    pub fn msg(text: &str) -> Error {
        Error { status: None, op: "", text: Text::from_str(text) }
    }

    /// A plugin error from `format_args!(...)` (pulls in `core::fmt`).
    pub fn from_args(args: fmt::Arguments<'_>) -> Error {
        let mut text = Text::new();
        let _ = fmt::write(&mut text, args);
        Error { status: None, op: "", text }
    }

    /// An error for host status `status` returned by `op`, with the host's `last_error` text.
    pub fn from_status(op: &'static str, status: Status) -> Error {
        let mut text = Text::new();
        // Straight into the error's own buffer; a longer explanation goes through the scratch
        // arena and is cut.
        let cap = text.buf.len();
        let n = unsafe { sys::last_error(text.buf.as_mut_ptr(), cap) };
        if n > 0 && n as usize <= cap {
            text.len = n as usize;
            text.fix_utf8();
        } else if n > 0 {
            if let Ok(b) = fetch_raw(|buf, limit| unsafe { sys::last_error(buf, limit) }) {
                text.push_str(utf8_prefix(b));
            }
        }
        Error { status: Some(status), op, text }
    }

    fn local(op: &'static str, status: Status, text: &str) -> Error {
        Error { status: Some(status), op, text: Text::from_str(text) }
    }

    /// The ABI status, or `None` for an error made by the plugin.
    pub fn status(&self) -> Option<Status> {
        self.status
    }

    /// The ABI status value (-1 … -5), or 0 for an error made by the plugin.
    pub fn code(&self) -> i32 {
        match self.status {
            Some(s) => s.code(),
            None => 0,
        }
    }

    /// True for a `NotFound` status.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(Status::NotFound)
    }

    /// The host function that failed ("set_meta", ...), or "" for a plugin error.
    pub fn op(&self) -> &str {
        self.op
    }

    /// The host's explanation (`last_error`), or the plugin's message.
    pub fn text(&self) -> &str {
        self.text.as_str()
    }

    /// The full sentence, as `Display` writes it, without `core::fmt`:
    /// `wasmta: set_meta: invalid argument: <host text>`, or the plugin's message.
    pub fn write_text<const N: usize>(&self, out: &mut Text<N>) {
        match self.status {
            None => {
                out.push_str(self.text.as_str());
            }
            Some(s) => {
                out.push_str("wasmta: ");
                out.push_str(self.op);
                out.push_str(": ");
                out.push_str(s.as_str());
                if let Status::Other(n) = s {
                    out.push_str(" ");
                    out.push_int(n as i64);
                }
                if !self.text.is_empty() {
                    out.push_str(": ");
                    out.push_str(self.text.as_str());
                }
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut t: Text<512> = Text::new();
        self.write_text(&mut t);
        f.write_str(t.as_str())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `Result<T, wasmta::Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;

fn check(op: &'static str, rc: i32) -> Result<i32> {
    match Status::from_code(rc) {
        None => Ok(rc),
        Some(s) => Err(Error::from_status(op, s)),
    }
}

// ---------------------------------------------------------------------------------------------
// Text: a fixed-capacity string

/// A string of at most `N` bytes stored inline (no allocation). Pushing more than fits cuts at
/// a character boundary. Dereferences to `str`; implements `fmt::Write`.
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    /// An empty text.
    pub const fn new() -> Self {
        Text { buf: [0; N], len: 0 }
    }

    /// A text holding `s` (cut to `N` bytes at a character boundary).
    pub fn from_str(s: &str) -> Self {
        let mut t = Self::new();
        t.push_str(s);
        t
    }

    /// The decimal form of `n` (`Text::<20>` always fits an `i64`).
    pub fn from_int(n: i64) -> Self {
        let mut t = Self::new();
        t.push_int(n);
        t
    }

    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 sequences are ever stored.
        unsafe { core::str::from_utf8_unchecked(&self.buf[..self.len]) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `s`, or as much of it as fits (whole characters). Returns false if it was cut.
    pub fn push_str(&mut self, s: &str) -> bool {
        let room = N - self.len;
        let mut n = s.len();
        if n > room {
            n = room;
            while n > 0 && !s.is_char_boundary(n) {
                n -= 1;
            }
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        n == s.len()
    }

    /// Appends the decimal form of `n` (without `core::fmt`).
    pub fn push_int(&mut self, n: i64) -> bool {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = n.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let mut ok = true;
        if n < 0 {
            ok = self.push_str("-");
        }
        // ASCII digits only.
        ok & self.push_str(unsafe { core::str::from_utf8_unchecked(&digits[i..]) })
    }

    /// Drops a trailing partial UTF-8 sequence or invalid bytes written by the host.
    fn fix_utf8(&mut self) {
        if let Err(e) = core::str::from_utf8(&self.buf[..self.len]) {
            self.len = e.valid_up_to();
        }
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deref for Text<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<str> for Text<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> PartialEq<str> for Text<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for Text<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> fmt::Write for Text<N> {
    /// Never fails: text that does not fit is cut.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The longest valid UTF-8 prefix of `b` (for host texts that should be UTF-8).
fn utf8_prefix(b: &[u8]) -> &str {
    match core::str::from_utf8(b) {
        Ok(s) => s,
        // Valid up to there, by from_utf8's own report.
        Err(e) => unsafe { core::str::from_utf8_unchecked(&b[..e.valid_up_to()]) },
    }
}

// ---------------------------------------------------------------------------------------------
// Global: state kept across hook calls

/// A value kept across hook calls in a `static`, e.g. config read in `wasmta_init`:
/// `static SMARTHOST: Global<Text<255>> = Global::new(Text::new());`. Values are only copied in
/// and out (no reference escapes), under a flag that costs nothing in a single-threaded module
/// (and keeps it sound in native unit tests).
pub struct Global<T: Copy> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

unsafe impl<T: Copy + Send> Sync for Global<T> {}

impl<T: Copy> Global<T> {
    pub const fn new(v: T) -> Self {
        Global { busy: AtomicBool::new(false), value: UnsafeCell::new(v) }
    }

    fn with<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        while self.busy.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
        let r = f(self.value.get());
        self.busy.store(false, Ordering::Release);
        r
    }

    /// A copy of the value.
    pub fn get(&self) -> T {
        self.with(|p| unsafe { *p })
    }

    /// Replaces the value.
    pub fn set(&self, v: T) {
        self.with(|p| unsafe { *p = v })
    }
}

// ---------------------------------------------------------------------------------------------
// Scratch arena: one static buffer, plus grown pages for values that do not fit

struct Arena {
    used: usize,
    // Overflow region obtained with memory.grow: [big, big + big_cap).
    big: usize,
    big_cap: usize,
    big_used: usize,
}

struct Scratch(UnsafeCell<[u8; SCRATCH_SIZE]>);
struct ArenaCell(UnsafeCell<Arena>);
// The arena is only touched from one call at a time: wasm32 without threads (see the
// compile_error above), and off wasm32 no Host exists (host calls are stubs) so it is unused.
unsafe impl Sync for Scratch {}
unsafe impl Sync for ArenaCell {}

static SCRATCH: Scratch = Scratch(UnsafeCell::new([0; SCRATCH_SIZE]));
static ARENA: ArenaCell = ArenaCell(UnsafeCell::new(Arena { used: 0, big: 0, big_cap: 0, big_used: 0 }));

fn arena() -> &'static mut Arena {
    // Only used for short, non-reentrant updates of the counters.
    unsafe { &mut *ARENA.0.get() }
}

fn scratch_base() -> *mut u8 {
    SCRATCH.0.get() as *mut u8
}

/// The free space to try first: the rest of the static buffer, else the rest of the grown one.
/// The flag says which (for `arena_commit`).
fn arena_free() -> (*mut u8, usize, bool) {
    let a = arena();
    if a.used < SCRATCH_SIZE {
        (unsafe { scratch_base().add(a.used) }, SCRATCH_SIZE - a.used, true)
    } else {
        ((a.big + a.big_used) as *mut u8, a.big_cap - a.big_used, false)
    }
}

/// Marks the first `n` bytes of what `arena_free` returned as used.
fn arena_commit(in_scratch: bool, n: usize) {
    let a = arena();
    if in_scratch {
        a.used += n;
    } else {
        a.big_used += n;
    }
}

/// Reserves `n` bytes: in the static buffer if they fit, else in grown pages.
fn arena_alloc(n: usize) -> Option<*mut u8> {
    let a = arena();
    if n <= SCRATCH_SIZE - a.used {
        let p = unsafe { scratch_base().add(a.used) };
        a.used += n;
        return Some(p);
    }
    if n > a.big_cap - a.big_used {
        grow(a, n)?;
    }
    let p = (a.big + a.big_used) as *mut u8;
    a.big_used += n;
    Some(p)
}

#[cfg(target_arch = "wasm32")]
fn grow(a: &mut Arena, n: usize) -> Option<()> {
    use core::arch::wasm32::{memory_grow, memory_size};
    const PAGE: usize = 65536;
    let end = memory_size(0) * PAGE;
    if a.big_cap > 0 && a.big + a.big_cap == end {
        // Our region is at the end of memory: extend it in place.
        let need = n - (a.big_cap - a.big_used);
        let pages = (need + PAGE - 1) / PAGE;
        if memory_grow(0, pages) == usize::MAX {
            return None;
        }
        a.big_cap += pages * PAGE;
    } else {
        // First overflow, or someone else (an allocator) grew memory since: start a new
        // region. Values in the old one stay valid until the end of the call; it is not reused.
        let pages = (n + PAGE - 1) / PAGE;
        let old = memory_grow(0, pages);
        if old == usize::MAX {
            return None;
        }
        a.big = old * PAGE;
        a.big_cap = pages * PAGE;
        a.big_used = 0;
    }
    Some(())
}

#[cfg(not(target_arch = "wasm32"))]
fn grow(_: &mut Arena, _: usize) -> Option<()> {
    None
}

fn arena_reset() {
    let a = arena();
    a.used = 0;
    a.big_used = 0;
}

enum FetchError {
    Status(i32),
    OutOfMemory,
    Changed,
}

/// Runs a (buf, limit) host call into the arena, retrying once into a buffer of the announced
/// length when the first one was too small.
fn fetch_raw<'a, F: FnMut(*mut u8, usize) -> i32>(mut call: F) -> core::result::Result<&'a [u8], FetchError> {
    let (p, limit, in_scratch) = arena_free();
    let n = call(p, limit);
    if n < 0 {
        return Err(FetchError::Status(n));
    }
    let n = n as usize;
    if n <= limit {
        arena_commit(in_scratch, n);
        return Ok(unsafe { core::slice::from_raw_parts(p, n) });
    }
    let p = arena_alloc(n).ok_or(FetchError::OutOfMemory)?;
    let m = call(p, n);
    if m < 0 {
        return Err(FetchError::Status(m));
    }
    if m as usize > n {
        return Err(FetchError::Changed); // cannot happen with this host: values are stable
    }
    Ok(unsafe { core::slice::from_raw_parts(p, m as usize) })
}

/// fetch_raw with errors turned into `Error`s, NotFound into `Ok(None)`.
fn fetch<'a, F: FnMut(*mut u8, usize) -> i32>(op: &'static str, call: F) -> Result<Option<&'a [u8]>> {
    match fetch_raw(call) {
        Ok(b) => Ok(Some(b)),
        Err(FetchError::Status(-1)) => Ok(None),
        Err(FetchError::Status(rc)) => Err(Error::from_status(op, Status::from_code(rc).unwrap_or(Status::Other(rc)))),
        Err(FetchError::OutOfMemory) => Err(Error::local(op, Status::Limit, "out of memory for the value")),
        Err(FetchError::Changed) => Err(Error::local(op, Status::Limit, "value changed size between two calls")),
    }
}

fn fetch_str<'a, F: FnMut(*mut u8, usize) -> i32>(op: &'static str, call: F) -> Result<Option<&'a str>> {
    match fetch(op, call)? {
        None => Ok(None),
        Some(b) => match core::str::from_utf8(b) {
            Ok(s) => Ok(Some(s)),
            Err(_) => Err(Error::local(op, Status::Invalid, "value is not UTF-8")),
        },
    }
}

fn required<T>(op: &'static str, v: Result<Option<T>>) -> Result<T> {
    match v? {
        Some(v) => Ok(v),
        None => Err(Error::local(op, Status::NotFound, "")),
    }
}

/// Copies bytes into the arena (for values the SDK builds itself).
fn arena_copy<'a>(b: &[u8]) -> Option<&'a mut [u8]> {
    let p = arena_alloc(b.len())?;
    unsafe {
        core::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
        Some(core::slice::from_raw_parts_mut(p, b.len()))
    }
}

// ---------------------------------------------------------------------------------------------
// Functions usable anywhere

/// The host's ABI version, `(major << 16) | minor` (0x0001_0001 for 1.1).
pub fn abi_version() -> u32 {
    unsafe { sys::abi_version() as u32 }
}

/// The subset of `want` ([`FEATURE_HEADER_WRITE`], [`FEATURE_BODY_READ`]) the host grants.
pub fn features(want: u64) -> u64 {
    unsafe { sys::features(want as i64) as u64 }
}

/// Log levels for [`log`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    Debug = -1,
    Info = 0,
    Warn = 1,
    Error = 2,
}

/// Writes a line to the server's diagnostics, tagged with the plugin and hook (cut at 4 KiB).
pub fn log(level: Level, msg: &str) {
    unsafe { sys::log(level as i32, msg.as_ptr(), msg.len()) }
}

/// `logf!(Level::Info, "queue {} for {}", q, d)`: [`log`] with formatting (into a 1 KiB
/// stack buffer; pulls in `core::fmt`).
#[macro_export]
macro_rules! logf {
    ($level:expr, $($arg:tt)*) => {{
        let mut t: $crate::Text<1024> = $crate::Text::new();
        let _ = ::core::fmt::Write::write_fmt(&mut t, ::core::format_args!($($arg)*));
        $crate::log($level, t.as_str());
    }};
}

/// Sets the reason logged if the current hook (or `wasmta_init`) fails (at most 1 KiB kept).
/// Handlers normally just return `Err(Error::msg(...))`, which does this.
pub fn set_error(msg: &str) {
    unsafe { sys::set_error(msg.as_ptr(), msg.len()) }
}

// ---------------------------------------------------------------------------------------------
// Host: the context every hook gets

/// The context of one hook call: what the host offers anywhere (config, last_error) and the
/// scratch arena that returned values borrow. [`Message`] and [`Queue`] dereference to it;
/// `wasmta_init` gets it directly. Only the SDK creates one, for the duration of a hook.
pub struct Host {
    _private: (),
}

impl Host {
    /// The plugin's own config: its `[plugins.config]` table as a JSON object (`{}` if absent).
    pub fn config(&self) -> Result<&str> {
        required("get_config", fetch_str("get_config", |b, l| unsafe { sys::get_config(b, l) }))
    }

    /// A top-level string field of the config (`[plugins.config] smarthost = "..."`), unescaped;
    /// `None` when absent. `Invalid` if the config is not a JSON object or the field not a string.
    pub fn config_str(&self, key: &str) -> Result<Option<&str>> {
        let raw = match self.config_value(key)? {
            None => return Ok(None),
            Some(v) => v,
        };
        let bad = || Error::local("get_config", Status::Invalid, "config field is not a string");
        let inner = match json::string_inner(raw.as_bytes()) {
            Some(i) => i,
            None => return Err(bad()),
        };
        if !inner.contains(&b'\\') {
            return Ok(Some(unsafe { core::str::from_utf8_unchecked(inner) }));
        }
        let out = arena_copy(inner).ok_or_else(|| Error::local("get_config", Status::Limit, "out of memory"))?;
        let n = json::unescape(inner, out).ok_or_else(bad)?;
        // unescape writes whole UTF-8 sequences only.
        Ok(Some(unsafe { core::str::from_utf8_unchecked(&out[..n]) }))
    }

    /// The raw JSON text of a top-level config field (`"x"`, `42`, `true`, `[...]`, `{...}`), or
    /// `None` when absent.
    pub fn config_value(&self, key: &str) -> Result<Option<&str>> {
        let doc = self.config()?;
        match json::lookup(doc.as_bytes(), key) {
            Ok(v) => Ok(v.map(|b| unsafe { core::str::from_utf8_unchecked(b) })),
            Err(()) => Err(Error::local("get_config", Status::Invalid, "config is not a JSON object")),
        }
    }

    /// The host's explanation of the last negative status in this call, or "". ([`Error`]s
    /// already carry it.)
    pub fn last_error(&self) -> &str {
        match fetch_str("last_error", |b, l| unsafe { sys::last_error(b, l) }) {
            Ok(Some(s)) => s,
            _ => "",
        }
    }

    /// Empties the scratch arena. Takes `&mut self`, so the borrow checker guarantees no value
    /// returned earlier is still in use. Useful in loops over many large values.
    pub fn reset_scratch(&mut self) {
        arena_reset();
    }
}

// ---------------------------------------------------------------------------------------------
// Message hooks

/// The message a message hook (`smtp_server_message_received`, `http_message_generated`) runs
/// for. Changes are staged: they apply only if the handler returns `Ok`.
pub struct Message {
    host: Host,
}

impl Deref for Message {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

impl DerefMut for Message {
    fn deref_mut(&mut self) -> &mut Host {
        &mut self.host
    }
}

impl Message {
    /// A meta value as this hook sees it, `None` when unset.
    pub fn meta(&self, key: &str) -> Result<Option<&str>> {
        fetch_str("get_meta", |b, l| unsafe { sys::get_meta(key.as_ptr(), key.len(), b, l) })
    }

    /// Sets a meta value (staged). `routing_domain` and `queue` are checked at once: a malformed
    /// domain or literal is `Invalid` here. Keys: 1–64 of `A-Z a-z 0-9 _ - .`.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        check("set_meta", unsafe { sys::set_meta(key.as_ptr(), key.len(), value.as_ptr(), value.len()) })?;
        Ok(())
    }

    /// The envelope sender ("" for the null sender `<>`).
    pub fn sender(&self) -> Result<&str> {
        required("get_sender", fetch_str("get_sender", |b, l| unsafe { sys::get_sender(b, l) }))
    }

    /// The number of envelope recipients.
    pub fn recipient_count(&self) -> Result<usize> {
        Ok(check("recipient_count", unsafe { sys::recipient_count() })? as usize)
    }

    /// Envelope recipient `i` (0-based), `None` when out of range.
    pub fn recipient(&self, i: usize) -> Result<Option<&str>> {
        if i > i32::MAX as usize {
            return Ok(None);
        }
        fetch_str("get_recipient", |b, l| unsafe { sys::get_recipient(i as i32, b, l) })
    }

    /// Every envelope recipient, in order.
    pub fn recipients(&self) -> Recipients<'_> {
        Recipients { m: self, i: 0, n: None }
    }

    /// The first header field named `name` (case-insensitive): the text after `Name:`, leading
    /// whitespace removed, folding kept as `CRLF WSP`. `None` when absent.
    pub fn header(&self, name: &str) -> Result<Option<&str>> {
        self.header_at(name, 0)
    }

    /// The `idx`-th (0-based) field named `name`. `Invalid` if it is not UTF-8 (see
    /// [`Message::header_bytes`]).
    pub fn header_at(&self, name: &str, idx: usize) -> Result<Option<&str>> {
        let idx = idx.min(i32::MAX as usize) as i32;
        fetch_str("get_header", |b, l| unsafe { sys::get_header(name.as_ptr(), name.len(), idx, b, l) })
    }

    /// The `idx`-th field named `name` as raw bytes (for 8-bit header content).
    pub fn header_bytes(&self, name: &str, idx: usize) -> Result<Option<&[u8]>> {
        let idx = idx.min(i32::MAX as usize) as i32;
        fetch("get_header", |b, l| unsafe { sys::get_header(name.as_ptr(), name.len(), idx, b, l) })
    }

    /// Every field named `name`, in order.
    pub fn headers<'a>(&'a self, name: &'a str) -> Headers<'a> {
        Headers { m: self, name, i: 0, done: false }
    }

    /// Stages a header field at the top of the header (above the trace `Received:`). Names:
    /// printable ASCII without `:` or space; values without CR or LF (`Invalid`).
    pub fn prepend_header(&self, name: &str, value: &str) -> Result<()> {
        check("prepend_header", unsafe {
            sys::prepend_header(name.as_ptr(), name.len(), value.as_ptr(), value.len())
        })?;
        Ok(())
    }

    /// Stages a header field at the end of the header.
    pub fn append_header(&self, name: &str, value: &str) -> Result<()> {
        check("append_header", unsafe {
            sys::append_header(name.as_ptr(), name.len(), value.as_ptr(), value.len())
        })?;
        Ok(())
    }

    /// The body: the bytes after the blank line ending the header. A body larger than the
    /// scratch buffer is read into grown memory pages (up to the plugin's `max_memory`).
    pub fn body(&self) -> Result<&[u8]> {
        required("get_body", fetch("get_body", |b, l| unsafe { sys::get_body(b, l) }))
    }

    /// The body's length, without copying it.
    pub fn body_len(&self) -> Result<usize> {
        Ok(check("get_body", unsafe { sys::get_body(core::ptr::null_mut(), 0) })? as usize)
    }

    /// Refuses the message (staged) with an SMTP `code` (400–599) and printable ASCII `text`,
    /// optionally starting with an enhanced code of the same class: `m.reject(550, "5.7.1 no")`.
    /// Return `Ok` from the handler to make it take effect; later plugins are not run.
    pub fn reject(&self, code: u16, text: &str) -> Result<()> {
        check("reject", unsafe { sys::reject(code as i32, text.as_ptr(), text.len()) })?;
        Ok(())
    }

    /// Asks the host (ABI 1.1) to DKIM-sign the message with a `[[dkim]]` key of the server
    /// config, by name: `json` is the params object, e.g.
    /// `{"key":"main","domain":"example.com","selector":"s2026"}` (ABI.md, `dkim_sign`: also
    /// `headers`, `header_canonicalization`, `body_canonicalization`, `expiration`). Staged; the
    /// host signs after the whole plugin chain ran. An unknown key name is `Invalid`, with the
    /// host's reason in the error.
    pub fn dkim_sign_json(&self, json: &str) -> Result<()> {
        check("dkim_sign", unsafe { sys::dkim_sign(json.as_ptr(), json.len()) })?;
        Ok(())
    }
}

/// Iterator over the envelope recipients ([`Message::recipients`]).
pub struct Recipients<'a> {
    m: &'a Message,
    i: usize,
    n: Option<usize>,
}

impl<'a> Iterator for Recipients<'a> {
    type Item = Result<&'a str>;
    fn next(&mut self) -> Option<Self::Item> {
        let n = match self.n {
            Some(n) => n,
            None => match self.m.recipient_count() {
                Ok(n) => *self.n.insert(n),
                Err(e) => {
                    self.n = Some(0);
                    return Some(Err(e));
                }
            },
        };
        if self.i >= n {
            return None;
        }
        self.i += 1;
        match self.m.recipient(self.i - 1) {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Iterator over the fields with one name ([`Message::headers`]).
pub struct Headers<'a> {
    m: &'a Message,
    name: &'a str,
    i: usize,
    done: bool,
}

impl<'a> Iterator for Headers<'a> {
    type Item = Result<&'a str>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.m.header_at(self.name, self.i);
        self.i += 1;
        match r {
            Ok(Some(v)) => Some(Ok(v)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// get_queue_config

/// The scheduled queue `get_queue_config` is asked about (read-only inputs from its name).
pub struct Queue {
    host: Host,
}

impl Deref for Queue {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

impl DerefMut for Queue {
    fn deref_mut(&mut self) -> &mut Host {
        &mut self.host
    }
}

impl Queue {
    /// An input by key (`queue`, `domain`, `tenant`, `campaign`, `routing_domain`), `None` when
    /// absent.
    pub fn meta(&self, key: &str) -> Result<Option<&str>> {
        fetch_str("get_meta", |b, l| unsafe { sys::get_meta(key.as_ptr(), key.len(), b, l) })
    }

    /// The queue's full name (`[campaign:][tenant@]domain[!routing_domain]`).
    pub fn name(&self) -> Result<&str> {
        required("get_meta", self.meta("queue"))
    }

    /// The destination domain.
    pub fn domain(&self) -> Result<&str> {
        required("get_meta", self.meta("domain"))
    }

    pub fn tenant(&self) -> Result<Option<&str>> {
        self.meta("tenant")
    }

    pub fn campaign(&self) -> Result<Option<&str>> {
        self.meta("campaign")
    }

    pub fn routing_domain(&self) -> Result<Option<&str>> {
        self.meta("routing_domain")
    }

    /// Hands over this queue's config (serialized to JSON in the scratch arena). The first
    /// plugin that does so wins; not calling it means "no opinion".
    pub fn make_queue_config(&self, cfg: &QueueConfig<'_>) -> Result<()> {
        let mut count = json::Count(0);
        cfg.write_json(&mut count);
        let p = arena_alloc(count.0)
            .ok_or_else(|| Error::local("make_queue_config", Status::Limit, "out of memory"))?;
        let buf = unsafe { core::slice::from_raw_parts_mut(p, count.0) };
        let mut w = json::SliceWriter { buf, pos: 0 };
        cfg.write_json(&mut w);
        let n = w.pos;
        let doc = unsafe { core::str::from_utf8_unchecked(&w.buf[..n]) };
        self.make_queue_config_json(doc)
    }

    /// Hands over a ready-made config document (one JSON object, decoded strictly by the host:
    /// an unknown field is `Invalid`, with `last_error` naming it).
    pub fn make_queue_config_json(&self, json: &str) -> Result<()> {
        check("make_queue_config", unsafe { sys::make_queue_config(json.as_ptr(), json.len()) })?;
        Ok(())
    }
}

/// One `protocol.smtp.mx_list` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mx<'a> {
    /// A host name or literal: `"smart.host.local"`, `"host:2525"`, `"[10.0.0.1]"`,
    /// `"[IPv6:::1]"`. Names are resolved for A/AAAA only.
    Host(&'a str),
    /// Connect to `addr`, use `name` for TLS SNI and logs: `{"name": ..., "addr": ...}`.
    NameAddr { name: &'a str, addr: &'a str },
}

/// A queue config ([`Queue::make_queue_config`]), built without allocation. Fields left unset
/// keep the server's `[queue]` defaults.
///
/// ```ignore
/// const MX: &[Mx] = &[Mx::Host("smart.host.local"), Mx::NameAddr { name: "mx.example.com", addr: "10.0.0.1" }];
/// q.make_queue_config(&QueueConfig::new().retry_interval(Duration::from_secs(300)).mx_list(MX))
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueConfig<'a> {
    retry_interval: Option<Duration>,
    max_retry_interval: Option<Duration>,
    max_age: Option<Duration>,
    max_message_rate: Option<&'a str>,
    egress_pool: Option<&'a str>,
    mx_list: Option<&'a [Mx<'a>]>,
}

impl<'a> QueueConfig<'a> {
    pub const fn new() -> Self {
        QueueConfig {
            retry_interval: None,
            max_retry_interval: None,
            max_age: None,
            max_message_rate: None,
            egress_pool: None,
            mx_list: None,
        }
    }
    /// First retry delay; each next one doubles (server default 20m).
    pub fn retry_interval(mut self, d: Duration) -> Self {
        self.retry_interval = Some(d);
        self
    }
    /// Cap on one retry delay.
    pub fn max_retry_interval(mut self, d: Duration) -> Self {
        self.max_retry_interval = Some(d);
        self
    }
    /// Expire when the next attempt would be later than this after reception (default 7d).
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }
    /// KumoMTA-style throttle ("100/s"): validated, not enforced yet.
    pub fn max_message_rate(mut self, rate: &'a str) -> Self {
        self.max_message_rate = Some(rate);
        self
    }
    /// Accepted for KumoMTA compatibility, not enforced yet.
    pub fn egress_pool(mut self, pool: &'a str) -> Self {
        self.egress_pool = Some(pool);
        self
    }
    /// Replaces MX resolution: hosts tried in order (must not be empty).
    pub fn mx_list(mut self, list: &'a [Mx<'a>]) -> Self {
        self.mx_list = Some(list);
        self
    }

    /// Writes the JSON document, fields in a fixed order:
    /// `{"retry_interval":"5s","protocol":{"smtp":{"mx_list":["a",{"name":"b","addr":"c"}]}}}`.
    pub fn write_json(&self, w: &mut dyn json::Sink) {
        let mut first = true;
        let mut key = |w: &mut dyn json::Sink, k: &str| {
            w.put(if first { b"{\"" } else { b",\"" });
            first = false;
            w.put(k.as_bytes());
            w.put(b"\":");
        };
        for (k, d) in [
            ("retry_interval", self.retry_interval),
            ("max_retry_interval", self.max_retry_interval),
            ("max_age", self.max_age),
        ] {
            if let Some(d) = d {
                key(w, k);
                json::duration(w, d);
            }
        }
        for (k, s) in [("max_message_rate", self.max_message_rate), ("egress_pool", self.egress_pool)] {
            if let Some(s) = s {
                key(w, k);
                json::string(w, s);
            }
        }
        if let Some(list) = self.mx_list {
            key(w, "protocol");
            w.put(b"{\"smtp\":{\"mx_list\":[");
            for (i, mx) in list.iter().enumerate() {
                if i > 0 {
                    w.put(b",");
                }
                match *mx {
                    Mx::Host(h) => json::string(w, h),
                    Mx::NameAddr { name, addr } => {
                        w.put(b"{\"name\":");
                        json::string(w, name);
                        w.put(b",\"addr\":");
                        json::string(w, addr);
                        w.put(b"}");
                    }
                }
            }
            w.put(b"]}}");
        }
        if first {
            w.put(b"{");
        }
        w.put(b"}");
    }
}

impl<'a> fmt::Display for QueueConfig<'a> {
    /// The JSON document.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut w = json::FmtWriter { f, err: false };
        self.write_json(&mut w);
        if w.err {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// get_egress_path_config (ABI 1.2)

/// The egress path `get_egress_path_config` is asked about: a site (the MX hosts, or the
/// literal, one routing domain's messages go to) and the routing domain that first reached it.
pub struct EgressSite {
    host: Host,
}

impl Deref for EgressSite {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

impl DerefMut for EgressSite {
    fn deref_mut(&mut self) -> &mut Host {
        &mut self.host
    }
}

impl EgressSite {
    /// An input by key (`routing_domain`, `site`; every other key is `None`).
    pub fn meta(&self, key: &str) -> Result<Option<&str>> {
        fetch_str("get_meta", |b, l| unsafe { sys::get_meta(key.as_ptr(), key.len(), b, l) })
    }

    /// The routing domain: the `routing_domain` meta of the message that first reached the
    /// site, else its recipient's domain.
    pub fn routing_domain(&self) -> Result<&str> {
        required("get_meta", self.meta("routing_domain"))
    }

    /// The site: the MX host names (or the literal) the path connects to.
    pub fn site(&self) -> Result<&str> {
        required("get_meta", self.meta("site"))
    }

    /// Hands over this path's config (serialized to JSON in the scratch arena). The first
    /// plugin that does so wins; not calling it means "no opinion" (the server's
    /// `[[egress.path]]` and `[egress]` apply).
    pub fn make_egress_path_config(&self, cfg: &EgressPathConfig<'_>) -> Result<()> {
        let mut count = json::Count(0);
        cfg.write_json(&mut count);
        let p = arena_alloc(count.0)
            .ok_or_else(|| Error::local("make_egress_path_config", Status::Limit, "out of memory"))?;
        let buf = unsafe { core::slice::from_raw_parts_mut(p, count.0) };
        let mut w = json::SliceWriter { buf, pos: 0 };
        cfg.write_json(&mut w);
        let n = w.pos;
        let doc = unsafe { core::str::from_utf8_unchecked(&w.buf[..n]) };
        self.make_egress_path_config_json(doc)
    }

    /// Hands over a ready-made config document (one JSON object with the `[egress]` key names,
    /// decoded strictly by the host: an unknown field is `Invalid`, and the error's text says
    /// `egress path config: json: unknown field "conection_limit"`).
    pub fn make_egress_path_config_json(&self, json: &str) -> Result<()> {
        check("make_egress_path_config", unsafe { sys::make_egress_path_config(json.as_ptr(), json.len()) })?;
        Ok(())
    }
}

/// `enable_tls` of an egress path (KumoMTA's modes; ABI.md, `make_egress_path_config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    Opportunistic,
    OpportunisticInsecure,
    Required,
    RequiredInsecure,
    Disabled,
}

impl Tls {
    /// The name the host takes (`"Required"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Tls::Opportunistic => "Opportunistic",
            Tls::OpportunisticInsecure => "OpportunisticInsecure",
            Tls::Required => "Required",
            Tls::RequiredInsecure => "RequiredInsecure",
            Tls::Disabled => "Disabled",
        }
    }
}

/// An egress path config ([`EgressSite::make_egress_path_config`]), built without allocation,
/// with the names of the server's `[egress]` table. Fields left unset keep what the server's
/// config gives the destination (`[[egress.path]]`, then `[egress]`).
///
/// ```ignore
/// e.make_egress_path_config(&EgressPathConfig::new().connection_limit(2).enable_tls(Tls::Required)
///     .smtp_auth_plain("relay-user", "smarthost")) // "smarthost": the NAME of a [secrets] entry
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct EgressPathConfig<'a> {
    connection_limit: Option<u32>,
    max_deliveries_per_connection: Option<u32>,
    max_message_rate: Option<&'a str>,
    max_connection_rate: Option<&'a str>,
    enable_tls: Option<Tls>,
    smtp_auth_plain_username: Option<&'a str>,
    smtp_auth_plain_password: Option<&'a str>,
    allow_smtp_auth_plain_without_tls: Option<bool>,
    ehlo_domain: Option<&'a str>,
    source_address: Option<&'a str>,
    smtp_port: Option<u16>,
    connect_timeout: Option<Duration>,
    command_timeout: Option<Duration>,
    data_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
}

impl<'a> EgressPathConfig<'a> {
    pub const fn new() -> Self {
        EgressPathConfig {
            connection_limit: None,
            max_deliveries_per_connection: None,
            max_message_rate: None,
            max_connection_rate: None,
            enable_tls: None,
            smtp_auth_plain_username: None,
            smtp_auth_plain_password: None,
            allow_smtp_auth_plain_without_tls: None,
            ehlo_domain: None,
            source_address: None,
            smtp_port: None,
            connect_timeout: None,
            command_timeout: None,
            data_timeout: None,
            idle_timeout: None,
        }
    }
    /// Connections open at once to the site, all its hosts together (> 0).
    pub fn connection_limit(mut self, n: u32) -> Self {
        self.connection_limit = Some(n);
        self
    }
    /// Messages per connection before it is closed and a new one opened (> 0).
    pub fn max_deliveries_per_connection(mut self, n: u32) -> Self {
        self.max_deliveries_per_connection = Some(n);
        self
    }
    /// Messages handed to the site's connections: `"N/period[,max_burst=M]"` (`"100/s"`).
    pub fn max_message_rate(mut self, rate: &'a str) -> Self {
        self.max_message_rate = Some(rate);
        self
    }
    /// New connections to the site, same syntax.
    pub fn max_connection_rate(mut self, rate: &'a str) -> Self {
        self.max_connection_rate = Some(rate);
        self
    }
    pub fn enable_tls(mut self, mode: Tls) -> Self {
        self.enable_tls = Some(mode);
        self
    }
    /// AUTH to the site (RFC 4954): the user name and the **name** of a `[secrets]` entry of
    /// the server config, never the password itself.
    pub fn smtp_auth_plain(mut self, username: &'a str, secret_name: &'a str) -> Self {
        self.smtp_auth_plain_username = Some(username);
        self.smtp_auth_plain_password = Some(secret_name);
        self
    }
    /// Send the credentials over a connection without TLS.
    pub fn allow_smtp_auth_plain_without_tls(mut self, allow: bool) -> Self {
        self.allow_smtp_auth_plain_without_tls = Some(allow);
        self
    }
    /// The EHLO name: a domain or an address literal (`[192.0.2.1]`).
    pub fn ehlo_domain(mut self, name: &'a str) -> Self {
        self.ehlo_domain = Some(name);
        self
    }
    /// The local IP address connections leave from.
    pub fn source_address(mut self, addr: &'a str) -> Self {
        self.source_address = Some(addr);
        self
    }
    /// The port connected to when the destination names none (> 0).
    pub fn smtp_port(mut self, port: u16) -> Self {
        self.smtp_port = Some(port);
        self
    }
    /// The TCP connect to each host (> 0).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }
    /// Every reply but the one to the final dot, and every command write (> 0).
    pub fn command_timeout(mut self, d: Duration) -> Self {
        self.command_timeout = Some(d);
        self
    }
    /// Writing the body, and the reply to its final dot (> 0).
    pub fn data_timeout(mut self, d: Duration) -> Self {
        self.data_timeout = Some(d);
        self
    }
    /// How long an unused connection stays open for the next message (> 0).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }

    /// Writes the JSON document, fields in the order of the ABI's table:
    /// `{"connection_limit":2,"enable_tls":"Required"}`.
    pub fn write_json(&self, w: &mut dyn json::Sink) {
        let mut first = true;
        let mut key = |w: &mut dyn json::Sink, k: &str| {
            w.put(if first { b"{\"" } else { b",\"" });
            first = false;
            w.put(k.as_bytes());
            w.put(b"\":");
        };
        for (k, n) in [
            ("connection_limit", self.connection_limit),
            ("max_deliveries_per_connection", self.max_deliveries_per_connection),
        ] {
            if let Some(n) = n {
                key(w, k);
                json::uint(w, n as u64);
            }
        }
        for (k, s) in [
            ("max_message_rate", self.max_message_rate),
            ("max_connection_rate", self.max_connection_rate),
            ("enable_tls", self.enable_tls.map(Tls::as_str)),
            ("smtp_auth_plain_username", self.smtp_auth_plain_username),
            ("smtp_auth_plain_password", self.smtp_auth_plain_password),
        ] {
            if let Some(s) = s {
                key(w, k);
                json::string(w, s);
            }
        }
        if let Some(b) = self.allow_smtp_auth_plain_without_tls {
            key(w, "allow_smtp_auth_plain_without_tls");
            w.put(if b { b"true" } else { b"false" });
        }
        for (k, s) in [("ehlo_domain", self.ehlo_domain), ("source_address", self.source_address)] {
            if let Some(s) = s {
                key(w, k);
                json::string(w, s);
            }
        }
        if let Some(p) = self.smtp_port {
            key(w, "smtp_port");
            json::uint(w, p as u64);
        }
        for (k, d) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
            ("data_timeout", self.data_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if let Some(d) = d {
                key(w, k);
                json::duration(w, d);
            }
        }
        if first {
            w.put(b"{");
        }
        w.put(b"}");
    }
}

impl<'a> fmt::Display for EgressPathConfig<'a> {
    /// The JSON document.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut w = json::FmtWriter { f, err: false };
        self.write_json(&mut w);
        if w.err {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// Minimal JSON support: writing queue and egress path configs, reading top-level config fields.
pub mod json {
    use core::fmt;
    use core::time::Duration;

    /// Where JSON is written.
    pub trait Sink {
        fn put(&mut self, b: &[u8]);
    }

    pub(crate) struct Count(pub(crate) usize);
    impl Sink for Count {
        fn put(&mut self, b: &[u8]) {
            self.0 += b.len();
        }
    }

    pub(crate) struct SliceWriter<'a> {
        pub(crate) buf: &'a mut [u8],
        pub(crate) pos: usize,
    }
    impl<'a> Sink for SliceWriter<'a> {
        fn put(&mut self, b: &[u8]) {
            let end = (self.pos + b.len()).min(self.buf.len());
            let n = end - self.pos;
            self.buf[self.pos..end].copy_from_slice(&b[..n]);
            self.pos = end;
        }
    }

    pub(crate) struct FmtWriter<'a, 'b> {
        pub(crate) f: &'a mut fmt::Formatter<'b>,
        pub(crate) err: bool,
    }
    impl<'a, 'b> Sink for FmtWriter<'a, 'b> {
        fn put(&mut self, b: &[u8]) {
            // The writer only ever puts whole UTF-8 sequences (ASCII syntax, whole &str).
            let s = unsafe { core::str::from_utf8_unchecked(b) };
            self.err |= self.f.write_str(s).is_err();
        }
    }

    impl<const N: usize> Sink for crate::Text<N> {
        fn put(&mut self, b: &[u8]) {
            self.push_str(crate::utf8_prefix(b));
        }
    }

    /// Writes `s` as a JSON string: `"` `\` and control characters escaped.
    pub fn string(w: &mut dyn Sink, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        w.put(b"\"");
        let b = s.as_bytes();
        let mut start = 0;
        for (i, &c) in b.iter().enumerate() {
            let esc: &[u8] = match c {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => &[],
                _ => continue,
            };
            w.put(&b[start..i]);
            if esc.is_empty() {
                w.put(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
            } else {
                w.put(esc);
            }
            start = i + 1;
        }
        w.put(&b[start..]);
        w.put(b"\"");
    }

    /// Writes a duration as the host's duration string: whole days, hours, minutes or seconds
    /// when exact ("7d", "20m", "90s"), else milliseconds, microseconds or nanoseconds.
    pub fn duration(w: &mut dyn Sink, d: Duration) {
        let secs = d.as_secs();
        let nanos = d.subsec_nanos() as u64;
        let (n, unit): (u64, &[u8]) = if nanos == 0 {
            if secs != 0 && secs % 86400 == 0 {
                (secs / 86400, b"d")
            } else if secs != 0 && secs % 3600 == 0 {
                (secs / 3600, b"h")
            } else if secs != 0 && secs % 60 == 0 {
                (secs / 60, b"m")
            } else {
                (secs, b"s")
            }
        } else if nanos % 1_000_000 == 0 {
            (secs.saturating_mul(1000).saturating_add(nanos / 1_000_000), b"ms")
        } else if nanos % 1000 == 0 {
            (secs.saturating_mul(1_000_000).saturating_add(nanos / 1000), b"us")
        } else {
            (secs.saturating_mul(1_000_000_000).saturating_add(nanos), b"ns")
        };
        w.put(b"\"");
        uint(w, n);
        w.put(unit);
        w.put(b"\"");
    }

    /// Writes `n` as a JSON number.
    pub fn uint(w: &mut dyn Sink, n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        w.put(&digits[i..]);
    }

    fn ws(b: &[u8], mut i: usize) -> usize {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }

    /// Index after the string starting at `b[i] == '"'`.
    fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
        i += 1;
        while i < b.len() {
            match b[i] {
                b'"' => return Some(i + 1),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        None
    }

    /// Index after the value starting at `b[i]`.
    fn skip_value(b: &[u8], i: usize) -> Option<usize> {
        match *b.get(i)? {
            b'"' => skip_string(b, i),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut j = i;
                while j < b.len() {
                    match b[j] {
                        b'"' => {
                            j = skip_string(b, j)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                None
            }
            _ => {
                let mut j = i;
                while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    j += 1;
                }
                if j == i {
                    None
                } else {
                    Some(j)
                }
            }
        }
    }

    /// The raw text of top-level field `key` of the JSON object `doc`; `Err` if `doc` is not an
    /// object (as far as this light scanner can tell).
    pub fn lookup<'a>(doc: &'a [u8], key: &str) -> Result<Option<&'a [u8]>, ()> {
        let mut i = ws(doc, 0);
        if doc.get(i) != Some(&b'{') {
            return Err(());
        }
        i = ws(doc, i + 1);
        if doc.get(i) == Some(&b'}') {
            return Ok(None);
        }
        loop {
            if doc.get(i) != Some(&b'"') {
                return Err(());
            }
            let kend = skip_string(doc, i).ok_or(())?;
            let k = &doc[i + 1..kend - 1];
            i = ws(doc, kend);
            if doc.get(i) != Some(&b':') {
                return Err(());
            }
            i = ws(doc, i + 1);
            let vend = skip_value(doc, i).ok_or(())?;
            if key_eq(k, key) {
                return Ok(Some(&doc[i..vend]));
            }
            i = ws(doc, vend);
            match doc.get(i) {
                Some(b',') => i = ws(doc, i + 1),
                Some(b'}') => return Ok(None),
                _ => return Err(()),
            }
        }
    }

    fn key_eq(raw: &[u8], key: &str) -> bool {
        if !raw.contains(&b'\\') {
            return raw == key.as_bytes();
        }
        let mut buf = [0u8; 256];
        if raw.len() > buf.len() {
            return false;
        }
        match unescape(raw, &mut buf) {
            Some(n) => &buf[..n] == key.as_bytes(),
            None => false,
        }
    }

    /// The inside of a JSON string value (`"..."` → `...`, still escaped), or `None`.
    pub fn string_inner(v: &[u8]) -> Option<&[u8]> {
        if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
            Some(&v[1..v.len() - 1])
        } else {
            None
        }
    }

    fn hex4(b: &[u8]) -> Option<u32> {
        if b.len() < 4 {
            return None;
        }
        let mut v = 0u32;
        for &c in &b[..4] {
            v = v * 16
                + match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    b'A'..=b'F' => c - b'A' + 10,
                    _ => return None,
                } as u32;
        }
        Some(v)
    }

    /// Unescapes the inside of a JSON string into `out` (at least `raw.len()` bytes: unescaping
    /// never grows). Returns the length, or `None` on a bad escape.
    pub fn unescape(raw: &[u8], out: &mut [u8]) -> Option<usize> {
        let (mut i, mut o) = (0, 0);
        while i < raw.len() {
            let c = raw[i];
            if c != b'\\' {
                *out.get_mut(o)? = c;
                i += 1;
                o += 1;
                continue;
            }
            let e = *raw.get(i + 1)?;
            i += 2;
            let ch = match e {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let mut u = hex4(&raw[i..])?;
                    i += 4;
                    if (0xD800..0xDC00).contains(&u) {
                        if raw.get(i) != Some(&b'\\') || raw.get(i + 1) != Some(&b'u') {
                            return None;
                        }
                        let lo = hex4(&raw[i + 2..])?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return None;
                        }
                        i += 6;
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    char::from_u32(u)?
                }
                _ => return None,
            };
            let mut tmp = [0u8; 4];
            let s = ch.encode_utf8(&mut tmp).as_bytes();
            out.get_mut(o..o + s.len())?.copy_from_slice(s);
            o += s.len();
        }
        Some(o)
    }
}

// ---------------------------------------------------------------------------------------------
// Exports

/// Declares the plugin's exports: the `wasmta_abi_v1` marker and one export per hook listed,
/// each calling a handler (a fn or closure):
///
/// ```ignore
/// wasmta::plugin! {
///     wasmta_init: init,                                   // fn(&mut Host) -> Result<(), Error>
///     smtp_server_message_received: on_message,            // fn(&mut Message) -> Result<(), Error>
///     http_message_generated: on_message,                  // idem
///     get_queue_config: on_queue,                          // fn(&mut Queue) -> Result<(), Error>
///     get_egress_path_config: on_egress,                   // fn(&mut EgressSite) -> Result<(), Error>
/// }
/// ```
///
/// Only the hooks listed are exported (list at least one message, queue or egress hook). Only
/// a plugin whose handler calls `make_egress_path_config` imports it (ABI 1.2); the others
/// still load on ABI 1.1 hosts. A handler's
/// `Err(e)` makes the hook return 1 after `set_error(e's text)`: nothing it staged is applied.
/// The exports are `unsafe extern "C"`: only the host calls them.
#[macro_export]
macro_rules! plugin {
    ($($hook:ident : $handler:expr),+ $(,)?) => {
        /// ABI v1 marker (never called).
        #[no_mangle]
        pub extern "C" fn wasmta_abi_v1() {}
        $( $crate::__wasmta_hook!($hook, $handler); )+
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __wasmta_hook {
    (wasmta_init, $h:expr) => {
        #[no_mangle]
        pub unsafe extern "C" fn wasmta_init() -> i32 {
            $crate::__rt::init($h)
        }
    };
    (init, $h:expr) => {
        $crate::__wasmta_hook!(wasmta_init, $h);
    };
    (smtp_server_message_received, $h:expr) => {
        #[no_mangle]
        pub unsafe extern "C" fn smtp_server_message_received() -> i32 {
            $crate::__rt::message($h)
        }
    };
    (http_message_generated, $h:expr) => {
        #[no_mangle]
        pub unsafe extern "C" fn http_message_generated() -> i32 {
            $crate::__rt::message($h)
        }
    };
    (get_queue_config, $h:expr) => {
        #[no_mangle]
        pub unsafe extern "C" fn get_queue_config() -> i32 {
            $crate::__rt::queue($h)
        }
    };
    (get_egress_path_config, $h:expr) => {
        #[no_mangle]
        pub unsafe extern "C" fn get_egress_path_config() -> i32 {
            $crate::__rt::egress($h)
        }
    };
    ($other:ident, $h:expr) => {
        compile_error!(concat!(
            "wasmta::plugin!: unknown hook `",
            stringify!($other),
            "` (use wasmta_init, smtp_server_message_received, http_message_generated, get_queue_config or get_egress_path_config)"
        ));
    };
}

/// Hook entry points used by [`plugin!`]. Not public API.
#[doc(hidden)]
pub mod __rt {
    use super::*;

    fn finish(r: Result<()>) -> i32 {
        arena_reset();
        match r {
            Ok(()) => 0,
            Err(e) => {
                let mut t: Text<{ limits::MAX_ERROR_TEXT }> = Text::new();
                e.write_text(&mut t);
                set_error(t.as_str());
                1
            }
        }
    }

    /// # Safety
    /// Called by the host only (one hook at a time per instance); never from the plugin.
    pub unsafe fn init<F: FnOnce(&mut Host) -> Result<()>>(f: F) -> i32 {
        arena_reset();
        finish(f(&mut Host { _private: () }))
    }

    /// # Safety
    /// As [`init`].
    pub unsafe fn message<F: FnOnce(&mut Message) -> Result<()>>(f: F) -> i32 {
        arena_reset();
        finish(f(&mut Message { host: Host { _private: () } }))
    }

    /// # Safety
    /// As [`init`].
    pub unsafe fn queue<F: FnOnce(&mut Queue) -> Result<()>>(f: F) -> i32 {
        arena_reset();
        finish(f(&mut Queue { host: Host { _private: () } }))
    }

    /// # Safety
    /// As [`init`].
    pub unsafe fn egress<F: FnOnce(&mut EgressSite) -> Result<()>>(f: F) -> i32 {
        arena_reset();
        finish(f(&mut EgressSite { host: Host { _private: () } }))
    }
}

/// Traps on panic (the host fails the hook and discards the instance). Build the SDK with
/// `--cfg wasmta_panic_message` to log the panic message first (pulls in `core::fmt`), or with
/// `--cfg wasmta_no_panic_handler` to provide your own `#[panic_handler]`.
#[cfg(all(target_arch = "wasm32", not(test), not(wasmta_no_panic_handler)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(wasmta_panic_message)]
    {
        let mut t: Text<1024> = Text::new();
        let _ = fmt::write(&mut t, format_args!("panic: {}", _info));
        log(Level::Error, t.as_str());
        set_error(t.as_str());
    }
    core::arch::wasm32::unreachable()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_json(c: &QueueConfig<'_>) -> std::string::String {
        let mut t: Text<4096> = Text::new();
        c.write_json(&mut t);
        let s = t.as_str().to_string();
        assert_eq!(s, c.to_string());
        let mut n = json::Count(0);
        c.write_json(&mut n);
        assert_eq!(n.0, s.len());
        s
    }

    #[test]
    fn queue_config_json() {
        const MX: &[Mx] = &[Mx::Host("smart.host.local"), Mx::NameAddr { name: "mx.example.com", addr: "127.0.0.3" }];
        assert_eq!(
            cfg_json(&QueueConfig::new().retry_interval(Duration::from_secs(5)).mx_list(MX)),
            r#"{"retry_interval":"5s","protocol":{"smtp":{"mx_list":["smart.host.local",{"name":"mx.example.com","addr":"127.0.0.3"}]}}}"#
        );
        assert_eq!(cfg_json(&QueueConfig::new()), "{}");
        assert_eq!(
            cfg_json(
                &QueueConfig::new()
                    .max_age(Duration::from_secs(7 * 86400))
                    .max_retry_interval(Duration::from_secs(7200))
                    .retry_interval(Duration::from_secs(1200))
                    .max_message_rate("100/s")
                    .egress_pool("p\"o\\l\n\u{1}é")
            ),
            r#"{"retry_interval":"20m","max_retry_interval":"2h","max_age":"7d","max_message_rate":"100/s","egress_pool":"p\"o\\l\n\u0001é"}"#
        );
        assert_eq!(cfg_json(&QueueConfig::new().max_age(Duration::from_millis(1500))), r#"{"max_age":"1500ms"}"#);
        assert_eq!(cfg_json(&QueueConfig::new().max_age(Duration::from_nanos(1500))), r#"{"max_age":"1500ns"}"#);
        assert_eq!(cfg_json(&QueueConfig::new().max_age(Duration::from_micros(3))), r#"{"max_age":"3us"}"#);
        assert_eq!(cfg_json(&QueueConfig::new().max_age(Duration::from_secs(0))), r#"{"max_age":"0s"}"#);
        assert_eq!(cfg_json(&QueueConfig::new().max_age(Duration::from_secs(90))), r#"{"max_age":"90s"}"#);
    }

    fn egress_json(c: &EgressPathConfig<'_>) -> std::string::String {
        let mut t: Text<4096> = Text::new();
        c.write_json(&mut t);
        let s = t.as_str().to_string();
        assert_eq!(s, c.to_string());
        let mut n = json::Count(0);
        c.write_json(&mut n);
        assert_eq!(n.0, s.len());
        s
    }

    #[test]
    fn egress_path_config_json() {
        assert_eq!(egress_json(&EgressPathConfig::new()), "{}");
        assert_eq!(
            egress_json(
                &EgressPathConfig::new()
                    .idle_timeout(Duration::from_secs(90))
                    .data_timeout(Duration::from_secs(600))
                    .command_timeout(Duration::from_secs(60))
                    .connect_timeout(Duration::from_millis(1500))
                    .smtp_port(2525)
                    .source_address("127.0.0.9")
                    .ehlo_domain("out.example")
                    .allow_smtp_auth_plain_without_tls(false)
                    .smtp_auth_plain("u\"x", "smarthost")
                    .enable_tls(Tls::OpportunisticInsecure)
                    .max_connection_rate("5/m")
                    .max_message_rate("100/s,max_burst=10")
                    .max_deliveries_per_connection(100)
                    .connection_limit(4294967295)
            ),
            r#"{"connection_limit":4294967295,"max_deliveries_per_connection":100,"max_message_rate":"100/s,max_burst=10","max_connection_rate":"5/m","enable_tls":"OpportunisticInsecure","smtp_auth_plain_username":"u\"x","smtp_auth_plain_password":"smarthost","allow_smtp_auth_plain_without_tls":false,"ehlo_domain":"out.example","source_address":"127.0.0.9","smtp_port":2525,"connect_timeout":"1500ms","command_timeout":"1m","data_timeout":"10m","idle_timeout":"90s"}"#
        );
        assert_eq!(egress_json(&EgressPathConfig::new().enable_tls(Tls::Disabled).connection_limit(0)), r#"{"connection_limit":0,"enable_tls":"Disabled"}"#);
    }

    #[test]
    fn json_lookup() {
        let doc = br#" { "a" : [1, {"x": "}"}], "sm\u0061rt": "my.host\"x\u00e9\ud83d\ude00", "n": 42, "t":true,"o":{"a":"b"} } "#;
        assert_eq!(json::lookup(doc, "a").unwrap(), Some(&br#"[1, {"x": "}"}]"#[..]));
        assert_eq!(json::lookup(doc, "n").unwrap(), Some(&b"42"[..]));
        assert_eq!(json::lookup(doc, "t").unwrap(), Some(&b"true"[..]));
        assert_eq!(json::lookup(doc, "o").unwrap(), Some(&br#"{"a":"b"}"#[..]));
        assert_eq!(json::lookup(doc, "x").unwrap(), None);
        let raw = json::lookup(doc, "smart").unwrap().unwrap();
        let inner = json::string_inner(raw).unwrap();
        let mut out = [0u8; 64];
        let n = json::unescape(inner, &mut out).unwrap();
        assert_eq!(core::str::from_utf8(&out[..n]).unwrap(), "my.host\"xé😀");
        assert!(json::lookup(b"[1]", "a").is_err());
        assert_eq!(json::lookup(b"{}", "a").unwrap(), None);
    }

    #[test]
    fn text() {
        let mut t: Text<5> = Text::new();
        assert!(t.push_str("ab"));
        assert!(!t.push_str("cdé")); // é does not fit whole
        assert_eq!(t.as_str(), "abcd");
        assert_eq!(Text::<20>::from_int(i64::MIN).as_str(), "-9223372036854775808");
        assert_eq!(Text::<20>::from_int(-2).as_str(), "-2");
        assert_eq!(Text::<20>::from_int(0).as_str(), "0");
    }

    #[test]
    fn status() {
        assert_eq!(Status::from_code(0), None);
        assert_eq!(Status::from_code(7), None);
        assert_eq!(Status::from_code(-2), Some(Status::Invalid));
        assert_eq!(Status::from_code(-9), Some(Status::Other(-9)));
        assert_eq!(Status::Invalid.code(), -2);
        let mut t: Text<100> = Text::new();
        Error::local("set_meta", Status::Invalid, "bad").write_text(&mut t);
        assert_eq!(t.as_str(), "wasmta: set_meta: invalid argument: bad");
        assert_eq!(Error::msg("boom").to_string(), "boom");
        assert_eq!(Error::from_args(format_args!("n={}", 3)).to_string(), "n=3");
        // Off wasm32 host calls are stubs answering Unimplemented.
        assert_eq!(abi_version() as i32, Status::Unimplemented.code());
        assert_eq!(features(3), 0);
    }

    #[test]
    fn global() {
        static G: Global<Text<8>> = Global::new(Text::new());
        assert_eq!(G.get().as_str(), "");
        G.set(Text::from_str("abc"));
        assert_eq!(G.get().as_str(), "abc");
        let mut t: Text<4> = Text::new();
        json::Sink::put(&mut t, &[b'a', 0xff, b'b']); // invalid UTF-8 is dropped, never stored
        assert_eq!(t.as_str(), "a");
    }
}
