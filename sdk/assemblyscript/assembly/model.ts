// ice:agent/model: language-model completions through providers the host configures, under the
// policy's `grants.model` (model patterns, token budgets, call count).
//
// result<completion, error> (20 bytes, align 4): tag @0; ok: text ptr @4, len @8, input-tokens @12,
// output-tokens @16; err: error @4. Messages are lowered as 16-byte records (pairs.ts).
import { _model_complete } from "./imports";
import { IMPORT_RET, freeBlock, loweredLen, lowerString, takeError, takeString } from "./abi";
import { allocPairs, freePairs, storePair } from "./pairs";
import { IceError, Result } from "./result";

export namespace model {
  /** One turn of the conversation; `role` is passed through as written ("system", "user", ...). */
  export class Message {
    constructor(public role: string, public content: string) {}

    static system(content: string): Message {
      return new Message("system", content);
    }

    static user(content: string): Message {
      return new Message("user", content);
    }

    static assistant(content: string): Message {
      return new Message("assistant", content);
    }
  }

  export class Usage {
    constructor(public inputTokens: u32, public outputTokens: u32) {}
  }

  export class Completion {
    constructor(public text: string, public usage: Usage) {}
  }

  /** Completes `messages` with `model` (a name the policy allows), in at most `maxTokens` tokens. */
  export function complete(model: string, messages: Message[], maxTokens: u32): Result<Completion, IceError> {
    const m = lowerString(model);
    const mLen = loweredLen;
    const count = messages.length;
    const array = allocPairs(count);
    for (let i = 0; i < count; i++) storePair(array, i, messages[i].role, messages[i].content);
    _model_complete(m, mLen, array, <usize>count, maxTokens, IMPORT_RET);
    freeBlock(m);
    freePairs(array, count);
    if (load<u8>(IMPORT_RET) != 0) return Result.err<Completion, IceError>(takeError(IMPORT_RET + 4));
    const inputTokens = load<u32>(IMPORT_RET, 12);
    const outputTokens = load<u32>(IMPORT_RET, 16);
    const text = takeString(load<usize>(IMPORT_RET, 4), load<usize>(IMPORT_RET, 8));
    return Result.ok<Completion, IceError>(new Completion(text, new Usage(inputTokens, outputTokens)));
  }
}
