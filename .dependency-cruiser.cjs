/**
 * The layers of host/src, lowest first. A module may import its own layer and the layers below it,
 * never one above, and nothing may import in a cycle. `npm test` runs this check (`npm run check:layers`);
 * a cycle or an upward import fails it. README.md ("Layout") says what each layer is for.
 */
const LAYERS = [
  ['core', '^host/src/(core|generated)/'],
  ['component', '^host/src/(component|build)/'],
  ['policy', '^host/src/policy/'],
  ['storage', '^host/src/storage/'],
  ['ledger', '^host/src/ledger/'],
  ['views', '^host/src/views/'],
  ['capabilities', '^host/src/capabilities/'],
  ['kernel', '^host/src/kernel/'],
  ['sandbox', '^host/src/sandbox/'],
  ['replay', '^host/src/replay/'],
  ['telemetry', '^host/src/telemetry/'],
  ['host', '^host/src/(host|index)\\.ts$'],
  ['mcp', '^host/src/mcp/'],
  ['cluster', '^host/src/cluster/'],
  ['serve', '^host/src/serve/'],
  ['cli', '^host/src/cli/'],
];

const upward = LAYERS.slice(0, -1).map(([name, path], index) => ({
  name: `${name}-imports-upward`,
  comment: `${name} is below ${LAYERS.slice(index + 1).map(([above]) => above).join(', ')}: it must not import them`,
  severity: 'error',
  from: { path },
  to: { path: LAYERS.slice(index + 1).map(([, above]) => above) },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'a cycle makes two modules one: split what they share into a lower module',
      severity: 'error',
      from: { path: '^host/src/' },
      to: { circular: true },
    },
    ...upward,
    {
      name: 'host-imports-tests-or-bench',
      comment: 'the runtime never depends on its tests or benchmarks',
      severity: 'error',
      from: { path: '^host/src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'unlayered-module',
      comment: 'every module of host/src belongs to a layer: put it in one of the folders above',
      severity: 'error',
      from: { path: '^host/src/', pathNot: LAYERS.map(([, path]) => path) },
      to: {},
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import that does not resolve',
      severity: 'error',
      from: { path: '^host/src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist)/' },
    // Type-only imports count: a lower layer must not even know a higher layer's types.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'node', 'default'], extensions: ['.ts', '.js', '.d.ts'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
