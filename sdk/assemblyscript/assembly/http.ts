// ice:agent/http: outbound HTTP under the policy's `grants.http`. The host decides every request on
// its URL, follows redirects itself and may add secrets; the guest only sees the final response.
//
// result<response, error> (24 bytes, align 4): tag @0; ok: status u16 @4, headers ptr @8, count @12
// (16-byte `header` records, see pairs.ts), body ptr @16, len @20; err: error @4.
import { _http_fetch } from "./imports";
import { IMPORT_RET, decodeUtf8, freeBlock, loweredLen, lowerString, takeError, takeString } from "./abi";
import { allocPairs, freePairs, storePair } from "./pairs";
import { IceError, Result } from "./result";

export namespace http {
  export class Header {
    constructor(public name: string, public value: string) {}
  }

  /** A request; build one with `Request.get(url)` / `Request.post(url, body)` and chain `header`. */
  export class Request {
    headers: Header[] = [];
    /** null sends no body at all; an empty array sends an empty one. */
    body: Uint8Array | null = null;

    /** `method` is sent as written (case-sensitive: "GET"); `url` must be absolute http(s). */
    constructor(public method: string, public url: string) {}

    static get(url: string): Request {
      return new Request("GET", url);
    }

    static post(url: string, body: Uint8Array): Request {
      return new Request("POST", url).withBody(body);
    }

    /** Adds a header (repeatable; Host, Content-Length and hop-by-hop headers are refused by the host). */
    header(name: string, value: string): Request {
      this.headers.push(new Header(name, value));
      return this;
    }

    withBody(body: Uint8Array): Request {
      this.body = body;
      return this;
    }

    /**
     * Sets the body to the UTF-8 bytes of `text`; lone surrogates become U+FFFD, as in every string
     * the SDK lowers.
     */
    withText(text: string): Request {
      return this.withBody(Uint8Array.wrap(String.UTF8.encode(text, false, String.UTF8.ErrorMode.REPLACE)));
    }
  }

  export class Response {
    constructor(public status: u16, public headers: Header[], public body: Uint8Array) {}

    /** The body decoded as UTF-8; malformed sequences become U+FFFD. */
    text(): string {
      return decodeUtf8(this.body.dataStart, <usize>this.body.length);
    }

    /** The value of the first header called `name` (ASCII case-insensitive), or null. */
    header(name: string): string | null {
      const headers = this.headers;
      for (let i = 0; i < headers.length; i++) {
        if (sameAsciiCaseless(headers[i].name, name)) return headers[i].value;
      }
      return null;
    }
  }

  /** Sends `req` (the host follows redirects) and returns the final response, whatever its status. */
  export function fetch(req: Request): Result<Response, IceError> {
    const method = lowerString(req.method);
    const methodLen = loweredLen;
    const url = lowerString(req.url);
    const urlLen = loweredLen;
    const headers = req.headers;
    const count = headers.length;
    const array = allocPairs(count);
    for (let i = 0; i < count; i++) storePair(array, i, headers[i].name, headers[i].value);
    // Copied into an unmanaged block like every other argument, so no GC object is lent to the host.
    const body = req.body;
    let bodyPtr: usize = 0;
    let bodyLen: usize = 0;
    if (body !== null && body.length != 0) {
      bodyLen = <usize>body.length;
      bodyPtr = heap.alloc(bodyLen);
      memory.copy(bodyPtr, body.dataStart, bodyLen);
    }
    _http_fetch(method, methodLen, url, urlLen, array, <usize>count, body !== null ? 1 : 0, bodyPtr, bodyLen, IMPORT_RET);
    freeBlock(method);
    freeBlock(url);
    freePairs(array, count);
    freeBlock(bodyPtr);
    if (load<u8>(IMPORT_RET) != 0) return Result.err<Response, IceError>(takeError(IMPORT_RET + 4));
    return Result.ok<Response, IceError>(takeResponse());
  }

  // Lifts the ok payload from IMPORT_RET and frees every block the host wrote for it.
  function takeResponse(): Response {
    const status = load<u16>(IMPORT_RET, 4);
    const list = load<usize>(IMPORT_RET, 8);
    const count = load<usize>(IMPORT_RET, 12);
    const bodyPtr = load<usize>(IMPORT_RET, 16);
    const bodyLen = load<usize>(IMPORT_RET, 20);
    const headers = new Array<Header>(<i32>count);
    for (let i: usize = 0; i < count; i++) {
      const at = list + (i << 4);
      const name = takeString(load<usize>(at), load<usize>(at, 4));
      headers[<i32>i] = new Header(name, takeString(load<usize>(at, 8), load<usize>(at, 12)));
    }
    freeBlock(list);
    const body = new Uint8Array(<i32>bodyLen);
    memory.copy(body.dataStart, bodyPtr, bodyLen);
    freeBlock(bodyPtr);
    return new Response(status, headers, body);
  }

  // Header names are ASCII tokens; folding only A-Z avoids allocating lowercased copies.
  function sameAsciiCaseless(a: string, b: string): bool {
    if (a.length != b.length) return false;
    for (let i = 0; i < a.length; i++) {
      let x = a.charCodeAt(i);
      let y = b.charCodeAt(i);
      if (x >= 0x41 && x <= 0x5A) x += 0x20;
      if (y >= 0x41 && y <= 0x5A) y += 0x20;
      if (x != y) return false;
    }
    return true;
  }
}
