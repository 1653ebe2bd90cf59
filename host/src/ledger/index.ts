/** The audit ledger: record format, SQLite store, verification and formatting. */
export * from './records.js';
export * from './store.js';
export * from './verify.js';
export * from './format.js';
export * from './recover.js';
export * from './buffered-writer.js';
export * from './calls.js';
export * from './intent-log.js';
export * from './budget.js';
