/**
 * OpenTelemetry traces of runs, made from the ledger after a run has ended: one span per run (GenAI
 * agent conventions: `invoke_agent <agent>`, `gen_ai.agent.name`, plus `ice.run.id`, outcome, blame,
 * fuel, ledger root) and one child span per import call (interface, function, decision, rule, seq, at
 * the recorded time for the recorded duration); a model call is a GenAI `chat` span with its token usage.
 *
 * Built from the records rather than on the call path, so a run pays nothing for tracing (with it off
 * or on), the spans say exactly what the audit says, and a run's trace is as good after a crash as its
 * ledger. Argument values never go into spans unless the operator opts in (`includeArguments`) — and
 * then only values the policy captured in full (a digest stays a digest).
 *
 * Exported over OTLP/HTTP (`@opentelemetry/exporter-trace-otlp-http`) when OTEL_EXPORTER_OTLP_ENDPOINT
 * or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (the exporter reads the standard OTEL_* variables).
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, trace, type Context, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, RandomIdGenerator, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { randomBytes } from 'node:crypto';
import { ICE_VERSION } from '../core/version.js';
import { ledgerCalls, type Captured, type LedgerCall, type RunStartRecord, type StoredRecord } from '../ledger/index.js';

export interface RunTracerOptions {
  /** Put argument values the policy captured in full on call spans (`ice.call.args`). Default false. */
  readonly includeArguments?: boolean;
  readonly serviceName?: string;
}

const propagator = new W3CTraceContextPropagator();
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/u;

/** A run's span ids, chosen before it runs so its outbound requests can name its span as their parent. */
export interface RunSpanIds {
  readonly traceId: string;
  readonly spanId: string;
  /** `00-<traceId>-<spanId>-01`: what the run's outbound HTTP requests carry. */
  readonly traceparent: string;
}

/** Random ids, except the next span's when `preset` says (the run span, whose id was given out before). */
class PresetIdGenerator extends RandomIdGenerator {
  preset: RunSpanIds | undefined;
  override generateTraceId = (): string => this.preset?.traceId ?? randomHex(16);
  override generateSpanId = (): string => {
    const preset = this.preset?.spanId;
    if (this.preset) this.preset = { ...this.preset, spanId: '' };
    return preset || randomHex(8);
  };
}

function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}
const MODEL_CALL = /\/model@[^#]*#complete$/u;

export class RunTracer {
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;
  private readonly ids = new PresetIdGenerator();

  constructor(
    exporter: SpanExporter,
    private readonly options: RunTracerOptions = {},
  ) {
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': options.serviceName ?? 'ice', 'service.version': ICE_VERSION }),
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 200 })],
      idGenerator: this.ids,
    });
    this.tracer = this.provider.getTracer('ice', ICE_VERSION);
  }

  /** A tracer exporting over OTLP/HTTP when the environment names an endpoint; undefined otherwise (tracing off). */
  static fromEnvironment(env: NodeJS.ProcessEnv = process.env, options: RunTracerOptions = {}): RunTracer | undefined {
    if (!env['OTEL_EXPORTER_OTLP_ENDPOINT'] && !env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) return undefined;
    return new RunTracer(new OTLPTraceExporter(), { ...options, includeArguments: options.includeArguments ?? env['ICE_TRACE_ARGUMENTS'] === '1' });
  }

  /** The ids a run's span will have, under the caller's trace when it sent a valid `traceparent`. */
  begin(parent?: string): RunSpanIds {
    const traceId = TRACEPARENT.exec(parent ?? '')?.[1] ?? randomHex(16);
    const spanId = randomHex(8);
    return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
  }

  /**
   * The spans of one ended run, from its records; `traceparent` (W3C) from the caller that asked for the
   * run becomes its parent. `agent` names the served agent (default: the component).
   */
  record(records: readonly StoredRecord[], options: { readonly traceparent?: string; readonly agent?: string; readonly ids?: RunSpanIds } = {}): void {
    const start = records[0]?.record;
    const end = records.at(-1)?.record;
    if (start?.type !== 'run-start' || end?.type !== 'run-end') return;
    const parent = options.traceparent ? propagator.extract(ROOT_CONTEXT, { traceparent: options.traceparent }, defaultTextMapGetter) : ROOT_CONTEXT;
    const agent = options.agent ?? start.component.name;
    const started = Date.parse(start.at);
    // The ids the run's outbound requests already named (begin), else fresh ones.
    this.ids.preset = options.ids;
    const span = this.tracer.startSpan(
      `invoke_agent ${agent}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: started,
        attributes: {
          'gen_ai.operation.name': 'invoke_agent',
          'gen_ai.agent.name': agent,
          'ice.run.id': start.run,
          'ice.component': start.component.name,
          'ice.component.digest': start.component.digest,
          'ice.policy.digest': start.policy.digest,
          'ice.invoked': invoked(start),
          ...(start.cause ? { 'ice.cause': start.cause.kind } : {}),
          ...(start.cause?.kind === 'event' ? { 'ice.cause.event': start.cause.event } : {}),
          'ice.outcome': end.outcome,
          ...(end.blame ? { 'ice.blame': end.blame } : {}),
          ...(end.limit ? { 'ice.limit': end.limit } : {}),
          ...(end.fuel !== undefined ? { 'ice.fuel': end.fuel } : {}),
          'ice.ledger_root': records.at(-1)!.hash,
          'ice.calls': end.counts.calls,
          'ice.calls.denied': end.counts.denied,
        },
      },
      parent,
    );
    this.ids.preset = undefined;
    if (end.outcome !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: end.reason ?? end.outcome });
    const inRun = trace.setSpan(parent, span);
    for (const call of ledgerCalls(records.map((r) => r.record))) this.recordCall(call, inRun);
    span.end(started + end.durationUs / 1000);
  }

  private recordCall(call: LedgerCall, parent: Context): void {
    const hash = call.call.lastIndexOf('#');
    const iface = call.call.slice(0, hash);
    const fn = call.call.slice(hash + 1);
    const short = iface.replace(/^[^:]+:[^/]+\//u, '').replace(/@.*$/u, '');
    const model = MODEL_CALL.test(call.call);
    const started = Date.parse(call.at);
    const unknown = call.outcome === undefined;
    const span = this.tracer.startSpan(
      model ? 'chat' : `${short}.${fn}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: started,
        attributes: {
          'ice.call.interface': iface,
          'ice.call.function': fn,
          'ice.call.seq': call.seq,
          'ice.decision': call.decision,
          'ice.rule': call.rule,
          'ice.call.outcome': unknown ? 'unknown' : 'ok' in call.outcome! ? 'ok' : call.outcome!.err.kind,
          ...(call.hop !== undefined ? { 'ice.call.hop': call.hop } : {}),
          ...(call.approval ? { 'ice.approval.by': call.approval.by, 'ice.approval.answer': call.approval.answer, 'ice.approval.waited_ms': call.approval.waitedMs } : {}),
          ...(model ? { 'gen_ai.operation.name': 'chat', ...usage(call), ...(this.options.includeArguments ? requestedModel(call) : {}) } : {}),
          ...(this.options.includeArguments ? { 'ice.call.args': call.args.map(shown) } : {}),
        },
      },
      parent,
    );
    if (!unknown && 'err' in call.outcome!) span.setStatus({ code: SpanStatusCode.ERROR, message: call.outcome.err.message });
    span.end(started + (call.durationUs ?? 0) / 1000);
  }

  /** Exports what is buffered. */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

function invoked(start: RunStartRecord): string {
  const invoke = start.invoke;
  if (invoke === undefined) return 'run';
  return invoke.kind === 'call' ? invoke.function : invoke.kind === 'command' ? 'wasi:cli/run' : invoke.kind;
}

/** A captured value as a span may show it: whole when the policy captured it whole, else its digest. */
function shown(value: Captured): string {
  if ('value' in value) return typeof value.value === 'string' ? value.value : JSON.stringify(value.value);
  return 'sha256' in value ? `sha256:${value.sha256}` : JSON.stringify(value);
}

/** A field of a record as the ledger captured it (`{fields: {…}}`), whole; undefined when digested or absent. */
function field(captured: Captured | null | undefined, name: string): Captured | undefined {
  return captured && 'fields' in captured ? captured.fields[name] : undefined;
}

function plainNumber(captured: Captured | undefined): number | undefined {
  return captured && 'value' in captured && typeof captured.value === 'number' ? captured.value : undefined;
}

/** GenAI token usage from a model call's recorded result (the result, not an argument). */
function usage(call: LedgerCall): Record<string, number> {
  const ok = call.outcome !== undefined && 'ok' in call.outcome ? call.outcome.ok : null;
  const used = field(ok, 'usage');
  const input = plainNumber(field(used, 'inputTokens'));
  const output = plainNumber(field(used, 'outputTokens'));
  return input !== undefined && output !== undefined ? { 'gen_ai.usage.input_tokens': input, 'gen_ai.usage.output_tokens': output } : {};
}

/** The model a call asked for (an argument: only with the operator's opt-in, and only when captured whole). */
function requestedModel(call: LedgerCall): Record<string, string> {
  const model = field(call.args[0], 'model');
  return model && 'value' in model && typeof model.value === 'string' ? { 'gen_ai.request.model': model.value } : {};
}
