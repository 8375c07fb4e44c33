// graphile-worker (https://worker.graphile.org) doing what `atelier bench queue` does: N empty
// jobs added in bulk, then workers take and complete them with a task that does nothing until
// the queue is empty (`runOnce`, the library's default settings: one job per fetch, each
// completion written at once); jobs per second over the draining only, the median of the runs.
// Each run has a scratch database of its own on the server (graphile-worker's tables in its
// own schema there), dropped after.
//
//   node queue.mjs --database postgres://postgres@127.0.0.1:5432/postgres \
//       [--jobs 5000] [--workers 4] [--processes 0] [--runs 3]
//
// With --processes P, P child processes with --workers W each drain the queue together, timed
// from the moment all are connected. Prints one JSON document.
import { fork } from "node:child_process";
import { Logger, makeWorkerUtils, runMigrations, runOnce } from "graphile-worker";
import pg from "pg";

const SCHEMA = "graphile_worker";
const TASK = "noop";
const quiet = new Logger(() => () => {});

function options(argv) {
  const o = { database: process.env.BENCH_CHILD_DATABASE_URL, jobs: 5000, workers: 4, processes: 0, runs: 3, child: false };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, "");
    if (name === "child") { o.child = true; continue; }
    if (!(name in o)) throw new Error(`unknown option ${argv[i]}`);
    o[name] = name === "database" ? argv[++i] : Number(argv[++i]);
  }
  if (!o.database) throw new Error("--database postgres://… is required");
  return o;
}

// `url` with its database replaced by `name`.
function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

// A pool whose idle connections' errors are reported, not thrown from nowhere.
function newPool(url, max) {
  const pool = new pg.Pool({ connectionString: url, max });
  const report = (e) => console.error(`database connection error: ${e.message}`);
  pool.on("error", report);
  pool.on("connect", (client) => client.on("error", report));
  return pool;
}

async function admin(url, sql) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { await c.query(sql); } finally { await c.end(); }
}

// A pool with `workers` connections already open, as atelier's measurement has.
async function warmPool(url, workers) {
  const pool = newPool(url, Math.max(10, workers + 2));
  const clients = await Promise.all(Array.from({ length: workers }, () => pool.connect()));
  clients.forEach((c) => c.release());
  return pool;
}

function drain(pool, workers) {
  return runOnce({
    pgPool: pool,
    schema: SCHEMA,
    concurrency: workers,
    noHandleSignals: true,
    logger: quiet,
    taskList: { [TASK]: async () => {} },
  });
}

async function oneRun(o, run) {
  const name = `graphile_bench_${process.pid}_${run}`;
  await admin(o.database, `DROP DATABASE IF EXISTS ${name}`);
  await admin(o.database, `CREATE DATABASE ${name}`);
  const url = withDatabase(o.database, name);
  try {
    const pool = newPool(url, 4);
    await runMigrations({ pgPool: pool, schema: SCHEMA, logger: quiet });
    const utils = await makeWorkerUtils({ pgPool: pool, schema: SCHEMA, logger: quiet });
    const t0 = performance.now();
    for (let done = 0; done < o.jobs; done += 1000) {
      const n = Math.min(1000, o.jobs - done);
      await utils.addJobs(Array.from({ length: n }, () => ({ identifier: TASK, payload: {}, maxAttempts: 1 })));
    }
    const enqueueMs = performance.now() - t0;
    await utils.release();
    await pool.end();
    let seconds;
    if (o.processes === 0) {
      const workerPool = await warmPool(url, o.workers);
      const t = performance.now();
      await drain(workerPool, o.workers);
      seconds = (performance.now() - t) / 1000;
      await workerPool.end();
    } else {
      seconds = await inChildren(o, url);
    }
    const check = new pg.Client({ connectionString: url });
    await check.connect();
    const left = Number((await check.query(`SELECT count(*) FROM ${SCHEMA}._private_jobs`)).rows[0].count);
    await check.end();
    if (left !== 0) throw new Error(`${left} jobs left in the queue after the run`);
    return { rate: o.jobs / seconds, enqueueMs };
  } finally {
    await admin(o.database, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

// P children drain the queue together; timed from the moment all are connected.
async function inChildren(o, url) {
  const here = new URL(import.meta.url).pathname;
  const children = Array.from({ length: o.processes }, () =>
    fork(here, ["--child", "--workers", String(o.workers)], {
      env: { ...process.env, BENCH_CHILD_DATABASE_URL: url },
    }));
  const message = (c, what) => new Promise((resolve, reject) => {
    c.once("message", (m) => (m === what ? resolve() : reject(new Error(`child said ${m}`))));
    c.once("exit", (code) => reject(new Error(`a child exited with ${code}`)));
  });
  await Promise.all(children.map((c) => message(c, "ready")));
  const t = performance.now();
  const done = children.map((c) => message(c, "done"));
  children.forEach((c) => c.send("go"));
  await Promise.all(done);
  const seconds = (performance.now() - t) / 1000;
  children.forEach((c) => c.connected && c.disconnect());
  return seconds;
}

async function child(o) {
  const pool = await warmPool(o.database, o.workers);
  const go = new Promise((resolve) => process.once("message", resolve));
  process.send("ready");
  await go;
  await drain(pool, o.workers);
  process.send("done");
  await pool.end();
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const o = options(process.argv.slice(2));
  if (o.child) return child(o);
  const rates = [];
  const enqueue = [];
  for (let run = 0; run < Math.max(1, o.runs); run++) {
    const { rate, enqueueMs } = await oneRun(o, run);
    rates.push(rate);
    enqueue.push(enqueueMs);
  }
  const pkg = (await import("graphile-worker/package.json", { with: { type: "json" } })).default;
  console.log(JSON.stringify({
    queue: {
      tool: `graphile-worker ${pkg.version}`,
      database: "postgresql",
      jobs: o.jobs,
      workers: o.workers,
      processes: o.processes,
      claimers: o.workers * Math.max(1, o.processes),
      runs: rates.length,
      jobs_per_second: median(rates),
      jobs_per_second_runs: rates,
      enqueue_ms_median: median(enqueue),
    },
  }));
}

main().catch((e) => {
  console.error(e.message ?? e);
  process.exit(1);
});
