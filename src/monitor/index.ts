export * from './snapshot.ts';
export * from './gate.ts';
export * from './lease.ts';
export * from './control.ts';
export * from './metrics.ts';
export * from './read.ts';
export * from './window.ts';
