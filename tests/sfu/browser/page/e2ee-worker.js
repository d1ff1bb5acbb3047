// RTCRtpScriptTransform worker: XOR each encoded frame after the bytes the packetizer reads
// (same rule as client.js's insertable-streams fallback).
onrtctransform = (event) => {
  const { key } = event.transformer.options;
  event.transformer.readable
    .pipeThrough(
      new TransformStream({
        transform(frame, controller) {
          const data = new Uint8Array(frame.data);
          const clear = frame.type === "key" ? 10 : frame.type === "delta" ? 3 : 1;
          for (let i = clear; i < data.length; i++) data[i] ^= key;
          frame.data = data.buffer;
          controller.enqueue(frame);
        },
      }),
    )
    .pipeTo(event.transformer.writable);
};
