// The harness's process helpers live in src/util (the demo starts servers the same way).
export * from '../../src/util/processes.ts';
