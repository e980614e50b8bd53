// Sound cues made on the spot with WebAudio (no audio files): an urgent pattern for alerts
// and a softer one for a share arriving. Browsers keep audio suspended until the person
// first touches the page, so the context is resumed on the first click or key.

const PATTERNS = {
  // [frequency Hz, start s, length s]: two-tone, three times, hard to miss
  alert: [
    [988, 0, 0.16], [740, 0.18, 0.16], [988, 0.4, 0.16], [740, 0.58, 0.16],
    [988, 0.8, 0.16], [740, 0.98, 0.16],
  ],
  // rising pair, for "something new for you"
  share: [[660, 0, 0.12], [880, 0.15, 0.2]],
};

let context = null;
const played = { alert: 0, share: 0 };
let muted = localStorage.getItem("rtcc.muted") === "1";

function audio() {
  if (context === null && "AudioContext" in window) context = new AudioContext();
  return context;
}

for (const kind of ["pointerdown", "keydown"]) {
  addEventListener(kind, () => audio()?.resume().catch(() => {}), { capture: true });
}

export function cue(name) {
  played[name] += 1;
  if (muted) return;
  const ctx = audio();
  if (ctx === null) return;
  const start = ctx.currentTime + 0.02;
  for (const [frequency, at, length] of PATTERNS[name]) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = name === "alert" ? "square" : "sine";
    osc.frequency.value = frequency;
    // Short ramps: no clicks at the edges of each tone.
    gain.gain.setValueAtTime(0, start + at);
    gain.gain.linearRampToValueAtTime(name === "alert" ? 0.18 : 0.25, start + at + 0.01);
    gain.gain.setValueAtTime(name === "alert" ? 0.18 : 0.25, start + at + length - 0.02);
    gain.gain.linearRampToValueAtTime(0, start + at + length);
    osc.connect(gain).connect(ctx.destination);
    osc.start(start + at);
    osc.stop(start + at + length + 0.01);
  }
}

export const isMuted = () => muted;

export function setMuted(value) {
  muted = value;
  localStorage.setItem("rtcc.muted", value ? "1" : "0");
}

// How many cues each kind has had (for tests and benchmarks).
export const cueCounts = () => ({ ...played });
