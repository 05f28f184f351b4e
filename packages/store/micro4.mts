const base = await import('/tmp/base/packages/schema/dist/index.js');
const neu = await import('/work/main/packages/schema/dist/index.js');
const h2 = { m: '16877', u: '0', g: '0', s: '0', n: '2', a: '1795586403640720423', t: '1795586403640720423', c: '1795586403640720423', v: '1', p: '1' };
const h3 = { m: '16877', u: '0', g: '0', n: '2', s: '0', as: '1795586403', an: '640720423', ts: '1795586403', tn: '640720423', cs: '1795586403', cn: '640720423', p: '1' };
for (let r = 0; r < 3; r++) {
  let t = performance.now(); for (let i = 0; i < 200000; i++) base.decodeInode(h2); const b = (performance.now() - t) * 1000 / 200000;
  t = performance.now(); for (let i = 0; i < 200000; i++) neu.decodeInode(h3); const n = (performance.now() - t) * 1000 / 200000;
  t = performance.now(); for (let i = 0; i < 200000; i++) neu.decodeInode(h2); const n2 = (performance.now() - t) * 1000 / 200000;
  console.log('decodeInode µs base', b.toFixed(2), 'new', n.toFixed(2), 'new(l2 hash)', n2.toFixed(2));
}
