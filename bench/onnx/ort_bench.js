// ONNX Runtime (npm onnxruntime-node, CPU) as the inference reference of bench/run.sh:
// runs MODEL.onnx on a random float32 input of shape SHAPE (comma-separated) with THREADS
// intra-op threads and prints the median latency of REPEAT runs after 3 warm-up runs
// ("latency_ms X") and the samples per second that makes at the shape's batch.
// usage: node ort_bench.js MODEL.onnx SHAPE THREADS REPEAT
const ort = require('onnxruntime-node');

async function main() {
  const [model, shapeArg, threadsArg, repeatArg] = process.argv.slice(2);
  const shape = shapeArg.split(',').map(Number);
  const threads = Number(threadsArg || 1), repeat = Number(repeatArg || 10);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all'});
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random() * 2 - 1;
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', data, shape);
  for (let i = 0; i < 3; i++) await session.run(feeds);
  const times = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  console.log(`latency_ms ${ms.toFixed(3)}`);
  console.log(`samples_per_sec ${(shape[0] * 1e3 / ms).toFixed(1)}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
