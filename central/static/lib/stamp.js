// The simulator's test pattern carries its frame number and capture time (ms since the
// epoch) as a stripe of 2 x 48 black/white blocks along the top, with a CRC-16 check, so a
// page can measure glass-to-glass latency by reading it off the decoded picture.

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const canvas = document.createElement("canvas");

// {frame, wallMs} of the picture in `video` now, or null when it carries no valid stamp.
export function readStamp(video) {
  const w = video.videoWidth;
  const h = video.videoHeight;
  if (!w || h < 32) return null;
  canvas.width = w;
  canvas.height = 32;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, w, 32, 0, 0, w, 32);
  const px = ctx.getImageData(0, 0, w, 32).data;
  const blockW = Math.floor(w / 48);
  let word = 0n;
  for (let i = 0; i < 96; i++) {
    const row = Math.floor(i / 48);
    const col = i % 48;
    const x = col * blockW + (blockW >> 1);
    const y = row * 16 + 8;
    const o = (y * w + x) * 4;
    const lum = 0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2];
    word = (word << 1n) | (lum > 125 ? 1n : 0n);
  }
  const value = word >> 16n;
  const check = Number(word & 0xffffn);
  const bytes = [];
  for (let i = 9; i >= 0; i--) bytes.push(Number((value >> BigInt(8 * i)) & 0xffn));
  if ((crc32(bytes) & 0xffff) !== check) return null;
  return { frame: Number(value >> 48n), wallMs: Number(value & 0xffffffffffffn) };
}
