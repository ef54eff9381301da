export * from './sample.ts';
export * from './rules.ts';
export * from './snapshot.ts';
export * from './plan.ts';
export * from './job.ts';
export * from './limits.ts';
export * from './capabilities.ts';
