// ONNX Runtime (npm onnxruntime-node, CPU) against nerve's outputs for make onnx-export-check:
// runs MODEL.onnx on the raw float32 input IN.bin of shape SHAPE (a file of dimensions) and
// compares output k with nerve's raw float32 WANT_k.bin. Prints one line per output:
// "output K NAME max|ort - nerve| SCALE" where SCALE = max(1, max|nerve|); exits 1 when a
// difference exceeds TOL * SCALE (TOL 1e-5) or an output is missing or of another size.
// usage: node ort_check.js MODEL.onnx IN.bin SHAPE WANT_0.bin [WANT_1.bin ...]
const ort = require('onnxruntime-node');
const fs = require('fs');

function floats(path) {
  const b = fs.readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

async function main() {
  const [model, input, shapeFile, ...wants] = process.argv.slice(2);
  const tol = 1e-5;
  const shape = fs.readFileSync(shapeFile, 'utf8').trim().split(/\s+/).map(Number);
  const session = await ort.InferenceSession.create(model, {intraOpNumThreads: 1, interOpNumThreads: 1});
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', floats(input), shape);
  const result = await session.run(feeds);
  let ok = session.outputNames.length === wants.length;
  if (!ok)
    console.log(`outputs: ONNX Runtime gives ${session.outputNames.length}, nerve wrote ${wants.length}`);
  wants.forEach((w, k) => {
    const name = session.outputNames[k];
    const want = floats(w), got = name ? result[name].data : null;
    if (!got || got.length !== want.length) {
      console.log(`output ${k} ${name}: ${got ? got.length : 'no'} values, nerve ${want.length}`);
      ok = false;
      return;
    }
    let d = 0, scale = 1;
    for (let i = 0; i < want.length; i++) {
      const e = Math.abs(got[i] - want[i]);
      d = e > d || Number.isNaN(e) ? (Number.isNaN(e) ? Infinity : e) : d;
      scale = Math.max(scale, Math.abs(want[i]));
    }
    console.log(`output ${k} ${name} ${d.toExponential(2)} ${scale.toPrecision(3)}`);
    if (!(d <= tol * scale)) ok = false;
  });
  process.exit(ok ? 0 : 1);
}
main().catch((e) => { console.log(`error ${String(e).split('\n')[0]}`); process.exit(1); });
