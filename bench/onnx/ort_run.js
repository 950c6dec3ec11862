// ONNX Runtime (npm onnxruntime-node, CPU) as the reference: runs MODEL.onnx on the raw
// float32 input IN.bin of shape SHAPE (a file of dimensions), writes output 0 as raw
// float32 to OUT.bin and prints the median batch-1 latency of REPEAT runs (one thread).
// usage: node ort_run.js MODEL.onnx IN.bin SHAPE OUT.bin [REPEAT]
const ort = require('onnxruntime-node');
const fs = require('fs');

async function main() {
  const [model, input, shapeFile, output, repeatArg] = process.argv.slice(2);
  const shape = fs.readFileSync(shapeFile, 'utf8').trim().split(/\s+/).map(Number);
  const buf = fs.readFileSync(input);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const session = await ort.InferenceSession.create(model, {intraOpNumThreads: 1, interOpNumThreads: 1});
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', Float32Array.from(data), shape);
  let result = await session.run(feeds);
  const y = result[session.outputNames[0]].data;
  fs.writeFileSync(output, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  const repeat = Number(repeatArg || 0);
  if (repeat > 0) {
    const times = [];
    for (let i = 0; i < repeat; i++) {
      const t0 = process.hrtime.bigint();
      result = await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    console.log(`ort_ms ${times[Math.floor(times.length / 2)].toFixed(3)}`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
