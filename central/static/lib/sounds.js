// Sound cues made on the spot with WebAudio (no audio files): an urgent pattern for alerts
// and a softer one for a share arriving. Browsers keep audio off until the person first
// touches the page; until then a cue cannot be heard, and the page is told so (onBlocked)
// that it can ask for that touch.

const PATTERNS = {
  // [frequency Hz, start s, length s]: two-tone, three times, hard to miss
  alert: [
    [988, 0, 0.16], [740, 0.18, 0.16], [988, 0.4, 0.16], [740, 0.58, 0.16],
    [988, 0.8, 0.16], [740, 0.98, 0.16],
  ],
  // rising pair, for "something new for you"
  share: [[660, 0, 0.12], [880, 0.15, 0.2]],
};
const LEVEL = { alert: 0.18, share: 0.25 };

let context = null;
const played = { alert: 0, share: 0, blocked: 0 };
let muted = localStorage.getItem("rtcc.muted") === "1";
const blockedListeners = [];

// A context made before any touch starts suspended (and Chrome warns); make it on the first
// touch, or at a cue when the browser already allows sound (a kiosk's autoplay policy).
function unlock() {
  if (!("AudioContext" in window)) return;
  context ??= new AudioContext();
  context.resume().catch(() => {});
}

for (const kind of ["pointerdown", "keydown"]) addEventListener(kind, unlock, { capture: true });

function onBlocked(listener) {
  blockedListeners.push(listener);
}

let waiting = false; // a cue waits for audio to be allowed

export function cue(name) {
  played[name] += 1;
  if (muted || !("AudioContext" in window)) return;
  // No touch yet: a context made now runs only where the browser already allows sound.
  context ??= new AudioContext();
  if (context.state === "running") return play(name);
  played.blocked += 1;
  blockedListeners.forEach((listener) => listener());
  if (waiting) return;
  waiting = true;
  // Heard as soon as audio is allowed (at once on a kiosk, else at the next touch).
  context.resume().then(() => {
    waiting = false;
    play(name);
  }, () => (waiting = false));
}

function play(name) {
  const start = context.currentTime + 0.02;
  for (const [frequency, at, length] of PATTERNS[name]) {
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.type = name === "alert" ? "square" : "sine";
    osc.frequency.value = frequency;
    // Short ramps: no clicks at the edges of each tone.
    gain.gain.setValueAtTime(0, start + at);
    gain.gain.linearRampToValueAtTime(LEVEL[name], start + at + 0.01);
    gain.gain.setValueAtTime(LEVEL[name], start + at + length - 0.02);
    gain.gain.linearRampToValueAtTime(0, start + at + length);
    osc.connect(gain).connect(context.destination);
    osc.start(start + at);
    osc.stop(start + at + length + 0.01);
  }
}

function setMuted(value) {
  muted = value;
  localStorage.setItem("rtcc.muted", value ? "1" : "0");
  if (!value) unlock(); // a click on "sound on" is the touch audio waits for
}

// How many cues each kind has had, and how many could not be heard (tests, benchmarks).
export const cueCounts = () => ({ ...played });

// The page's sound button: on/off, and a plain request for a click while the browser keeps
// audio off (an alert must never be silent without the dispatcher knowing).
export function soundButton(button) {
  let blocked = false;
  const show = () => {
    button.classList.toggle("blocked", blocked);
    button.textContent = blocked ? "Sound blocked: click here" : muted ? "Sound off" : "Sound on";
    button.setAttribute("aria-pressed", String(!muted));
  };
  onBlocked(() => {
    blocked = true;
    show();
  });
  button.addEventListener("click", () => {
    if (blocked) {
      blocked = false;
      setMuted(false);
    } else {
      setMuted(!muted);
    }
    show();
  });
  show();
}
