// Core-module imports of the ice:agent@0.1.0 world, in canonical-ABI flattened form (wasm32).
//
// Names: module = the versioned interface name, field = the WIT function name (what wit-component
// expects of a core module). Flattening: a string is (ptr, len); the `level` enum is an i32; every
// function returns a result with more than one flat value, so the caller passes a return pointer as
// the last argument and the host writes the result there (layouts in abi.ts).
// Only the imports a guest actually reaches are compiled in (AssemblyScript compiles lazily), so a
// component imports exactly the interfaces its guest uses; wit-component drops the rest.

// log.write: func(level: level, message: string) -> result<_, error>
// @ts-ignore: decorator
@external("ice:agent/log@0.1.0", "write")
export declare function _log_write(level: i32, msgPtr: usize, msgLen: usize, retPtr: usize): void;

// clock.now: func() -> result<u64, error>
// @ts-ignore: decorator
@external("ice:agent/clock@0.1.0", "now")
export declare function _clock_now(retPtr: usize): void;

// random.bytes: func(len: u32) -> result<list<u8>, error>
// @ts-ignore: decorator
@external("ice:agent/random@0.1.0", "bytes")
export declare function _random_bytes(len: u32, retPtr: usize): void;

// kv.get: func(key: string) -> result<option<string>, error>
// @ts-ignore: decorator
@external("ice:agent/kv@0.1.0", "get")
export declare function _kv_get(keyPtr: usize, keyLen: usize, retPtr: usize): void;

// kv.set: func(key: string, value: string) -> result<_, error>
// @ts-ignore: decorator
@external("ice:agent/kv@0.1.0", "set")
export declare function _kv_set(keyPtr: usize, keyLen: usize, valPtr: usize, valLen: usize, retPtr: usize): void;

// kv.delete: func(key: string) -> result<_, error>
// @ts-ignore: decorator
@external("ice:agent/kv@0.1.0", "delete")
export declare function _kv_delete(keyPtr: usize, keyLen: usize, retPtr: usize): void;

// kv.keys: func(prefix: string) -> result<list<string>, error>
// @ts-ignore: decorator
@external("ice:agent/kv@0.1.0", "keys")
export declare function _kv_keys(prefixPtr: usize, prefixLen: usize, retPtr: usize): void;

// events.emit: func(kind: string, payload: string) -> result<_, error>
// @ts-ignore: decorator
@external("ice:agent/events@0.1.0", "emit")
export declare function _events_emit(kindPtr: usize, kindLen: usize, payloadPtr: usize, payloadLen: usize, retPtr: usize): void;

// http.fetch: func(req: request) -> result<response, error>
// The request record flattens to method (ptr, len), url (ptr, len), headers (ptr, count of 16-byte
// `header` records) and body as option<list<u8>>: (is-some, ptr, len).
// @ts-ignore: decorator
@external("ice:agent/http@0.1.0", "fetch")
export declare function _http_fetch(
  methodPtr: usize, methodLen: usize,
  urlPtr: usize, urlLen: usize,
  headersPtr: usize, headersLen: usize,
  bodyIsSome: i32, bodyPtr: usize, bodyLen: usize,
  retPtr: usize,
): void;

// model.complete: func(req: completion-request) -> result<completion, error>
// The request record flattens to model (ptr, len), messages (ptr, count of 16-byte `message`
// records), max-tokens.
// @ts-ignore: decorator
@external("ice:agent/model@0.1.0", "complete")
export declare function _model_complete(
  modelPtr: usize, modelLen: usize,
  messagesPtr: usize, messagesLen: usize,
  maxTokens: u32,
  retPtr: usize,
): void;
