/** How the host reaches model providers (host options; never a guest or a policy). */
export interface OpenAiCompatibleConfig {
  /** e.g. `https://api.openai.com/v1`; `/chat/completions` is appended. */
  readonly baseUrl: string;
  /** The host secret holding the API key (sent as `Authorization: Bearer …`). Default OPENAI_API_KEY; none sent if unset. */
  readonly apiKeySecret?: string;
  /** Per call. Default 60 s. */
  readonly timeoutMs?: number;
}

export interface ModelConfig {
  readonly openai?: OpenAiCompatibleConfig;
}
