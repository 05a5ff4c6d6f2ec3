// Runs an ONNX model in ONNX Runtime (onnxruntime-node) for the export tests.
// Usage: node onnx_run.js MODEL OUT_DIR INPUT_FILE TYPE DIMS   (TYPE float32|uint8, DIMS like 1,3,33,41)
// Writes OUT_DIR/<output name>.bin (raw little-endian) and OUT_DIR/<output name>.json ({type, dims}).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

async function main() {
  const [model, outDir, inputFile, type, dimsText] = process.argv.slice(2);
  const dims = dimsText.split(',').map(Number);
  const raw = fs.readFileSync(inputFile);
  const buf = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
  const data = type === 'uint8' ? new Uint8Array(buf) : new Float32Array(buf);
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor(type, data, dims);
  const results = await session.run(feeds);
  for (const name of session.outputNames) {
    const t = results[name];
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    fs.writeFileSync(path.join(outDir, name + '.bin'), bytes);
    fs.writeFileSync(path.join(outDir, name + '.json'), JSON.stringify({ type: t.type, dims: t.dims }));
  }
  console.log('ok ' + session.outputNames.join(','));
}

main().catch((e) => { console.error(e && e.stack ? e.stack : String(e)); process.exit(1); });
