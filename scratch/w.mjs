import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
const path = '/tmp/wtest.db';
import { rmSync } from 'node:fs'; rmSync(path, {force:true}); rmSync(path+'-wal',{force:true}); rmSync(path+'-shm',{force:true});
const db = new Database(path); db.pragma('journal_mode = WAL'); db.exec('create table t (x integer)'); 
const code = `
const { parentPort } = require('node:worker_threads');
const Database = require('better-sqlite3');
const db = new Database('${path}'); db.pragma('busy_timeout = 5000');
const ins = db.prepare('insert into t values (?)');
let i = 0;
parentPort.postMessage('ready');
// commit records one by one, and also hold an open transaction in a tight loop
for (;;) { ins.run(i++); if (i === 1000) { db.exec('BEGIN IMMEDIATE'); ins.run(-1); for(;;){} } }
`;
const w = new Worker(code, { eval: true });
await new Promise(r => w.once('message', r));
await new Promise(r => setTimeout(r, 300));
const t0 = performance.now();
await w.terminate();
console.log('terminated in', (performance.now()-t0).toFixed(1), 'ms');
db.pragma('busy_timeout = 2000');
const t1 = performance.now();
db.prepare('insert into t values (?)').run(99999);
console.log('main write ok after', (performance.now()-t1).toFixed(1), 'ms; rows', db.prepare('select count(*) c, min(x) m from t').get());
