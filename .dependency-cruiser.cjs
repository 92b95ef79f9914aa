// graft's layering, checked by dependency-cruiser in CI (src/layers.test.ts): bottom up, a layer never
// imports one above it, and the top layer (cli, serve, web) reaches the rest only through the public API.
// Tests and test kits may import anything.
const LAYERS = [
  ['base', '^src/(errors|rng|context)\\.ts$|^src/io/'],
  ['graph', '^src/graph/'],
  ['runtime', '^src/runtime/'],
  ['train', '^src/(train|heads|model)/'],
  ['inputs', '^src/(backbones|features|data)/'],
  ['capabilities', '^src/(probe|finetune|rank|tabular|text|demo|adapt|loops|privacy)/'],
  ['tasks', '^src/tasks/'],
  ['report', '^src/report/'],
  ['api', '^src/(index|engine)\\.ts$'],
  ['apps', '^src/(cli|serve|web)/'],
];
const TESTS = '\\.test\\.ts$|testkit\\.ts$|\\.typetest\\.ts$';

const upward = LAYERS.slice(0, -1).map(([name, path], i) => ({
  name: `no-upward-from-${name}`,
  comment: `${name} (${path}) imports nothing above it: ${LAYERS.slice(i + 1).map(([n]) => n).join(', ')}`,
  severity: 'error',
  from: { path, pathNot: TESTS },
  to: { path: LAYERS.slice(i + 1).map(([, p]) => p).join('|') },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'apps-use-the-public-api',
      comment: 'cli/, serve/ and web/ call only the public API (src/index.ts, src/engine.ts) and each other',
      severity: 'error',
      from: { path: '^src/(cli|serve|web)/', pathNot: TESTS },
      to: { path: '^src/', pathNot: '^src/(index|engine)\\.ts$|^src/(cli|serve|web)/' },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles between modules (a cycle of type-only imports is allowed: it leaves no trace at run time)',
      severity: 'error',
      from: { pathNot: TESTS },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'no-test-code-in-the-library',
      comment: 'library modules do not import tests or test kits',
      severity: 'error',
      from: { path: '^src/', pathNot: TESTS },
      to: { path: TESTS },
    },
    {
      name: 'no-dev-dependencies-in-the-library',
      comment: 'the installed package has no devDependencies (tsx, typescript, tfjs, autocannon)',
      severity: 'error',
      from: { path: '^src/', pathNot: TESTS },
      to: { dependencyTypes: ['npm-dev'] },
    },
    {
      name: 'no-unresolvable',
      comment: 'every import resolves',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
