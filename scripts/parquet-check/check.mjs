// Reads a netssm dataset (Parquet) with DuckDB, which knows nothing of netssm,
// and checks the documented columns: names and types, one row per trace,
// per-packet lists of equal length, tokens opening with a label and ending
// with <eos>, and the tokenizer spec in the key-value metadata.
// Usage: node check.mjs DATA.parquet   (prints one JSON summary line; exit 1 on a failed check)
import { DuckDBInstance } from '@duckdb/node-api';

const file = process.argv[2];
if (!file) {
  console.error('usage: node check.mjs DATA.parquet');
  process.exit(2);
}
const lit = `'${file.replaceAll("'", "''")}'`;
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const rows = async (sql) => (await con.runAndReadAll(sql)).getRowObjectsJS();

const want = {
  trace_id: 'VARCHAR', label: 'VARCHAR', source: 'VARCHAR', source_sha256: 'VARCHAR',
  link_type: 'VARCHAR', n_packets: 'BIGINT', tokens: 'USMALLINT[]', pkt_offsets: 'UINTEGER[]',
  ts_ns: 'BIGINT[]', wire_len: 'UINTEGER[]',
};
const failures = [];
const cols = Object.fromEntries((await rows(`DESCRIBE SELECT * FROM read_parquet(${lit})`)).map((r) => [r.column_name, r.column_type]));
for (const [name, type] of Object.entries(want)) {
  if (cols[name] !== type) failures.push(`column ${name}: ${cols[name] ?? 'missing'}, want ${type}`);
}
const [s] = await rows(`
  SELECT count(*) AS traces,
         sum(n_packets) AS packets,
         sum(len(tokens)) AS tokens,
         count(DISTINCT label) AS labels,
         sum(CASE WHEN len(pkt_offsets) = n_packets AND len(ts_ns) = n_packets AND len(wire_len) = n_packets THEN 0 ELSE 1 END) AS bad_lengths,
         sum(CASE WHEN tokens[len(tokens)] = 258 AND tokens[1] > 258 THEN 0 ELSE 1 END) AS bad_frames,
         sum(CASE WHEN ts_ns[1] = 0 THEN 0 ELSE 1 END) AS bad_starts
  FROM read_parquet(${lit})`);
if (Number(s.bad_lengths) !== 0) failures.push(`${s.bad_lengths} traces whose per-packet lists disagree with n_packets`);
if (Number(s.bad_frames) !== 0) failures.push(`${s.bad_frames} traces not framed <label:…> … <eos>`);
if (Number(s.bad_starts) !== 0) failures.push(`${s.bad_starts} traces whose ts_ns does not start at 0`);
const kv = await rows(`SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata(${lit})`);
const specRow = kv.find((r) => r.k === 'netssm.tokenizer_spec');
let vocab = null;
if (!specRow) failures.push('no netssm.tokenizer_spec in the key-value metadata');
else vocab = JSON.parse(specRow.v).vocab_size;
const [mx] = await rows(`SELECT max(list_max(tokens)) AS m FROM read_parquet(${lit})`);
if (vocab !== null && Number(mx.m) >= vocab) failures.push(`token id ${mx.m} ≥ vocab_size ${vocab}`);
const summary = {
  reader: 'duckdb', file, traces: Number(s.traces), packets: Number(s.packets), tokens: Number(s.tokens),
  labels: Number(s.labels), vocab_size: vocab, failures,
};
console.log(JSON.stringify(summary));
process.exit(failures.length ? 1 : 0);
