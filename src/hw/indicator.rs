//! LEDs and the door relay. [`Indicator`] is what the terminal drives (accept, reject, idle);
//! [`LineIndicator`] turns that into line changes (green LED, red LED, a timed relay pulse) over
//! any [`OutputLines`]: the GPIO character device (feature `gpio`), rppal on a Raspberry Pi
//! (feature `rpi`), or a [`Recorder`] in tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum IndicatorError {
    #[error("GPIO: {0}")]
    Gpio(String),
}

/// What the terminal wants shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Green on, relay pulsed.
    Accept,
    /// Red on.
    Reject,
    /// All off.
    Idle,
}

pub trait Indicator: Send {
    /// Show `signal`; `now` is a monotonic clock shared with [`Indicator::tick`].
    fn signal(&mut self, signal: Signal, now: Duration) -> Result<(), IndicatorError>;
    /// Called often (every frame or wait slice): ends relay pulses that are due.
    fn tick(&mut self, _now: Duration) -> Result<(), IndicatorError> {
        Ok(())
    }
}

/// No hardware: one log line per change.
#[derive(Debug, Default)]
pub struct LogIndicator {
    last: Option<Signal>,
}

impl Indicator for LogIndicator {
    fn signal(&mut self, signal: Signal, _now: Duration) -> Result<(), IndicatorError> {
        if self.last != Some(signal) {
            log::info!("indicator: {signal:?}");
            self.last = Some(signal);
        }
        Ok(())
    }
}

/// The three outputs a door terminal drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Green,
    Red,
    Relay,
}

/// Physical output lines; `active` is the logical level (the backend applies active-low).
pub trait OutputLines: Send {
    fn set(&mut self, line: Line, active: bool) -> Result<(), IndicatorError>;
}

/// The `[outputs]` settings for LEDs and relay lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineParams {
    /// GPIO chip (character device backend), e.g. `/dev/gpiochip0`.
    pub chip: String,
    /// Line offsets (BCM numbers on a Raspberry Pi); unset lines are not driven.
    pub green: Option<u32>,
    pub red: Option<u32>,
    pub relay: Option<u32>,
    /// Lines are active low (LEDs wired to 3V3, many relay boards).
    pub active_low: bool,
    /// How long the relay stays on after an accept.
    pub relay_pulse_ms: u64,
}

impl Default for LineParams {
    fn default() -> Self {
        Self {
            chip: "/dev/gpiochip0".to_string(),
            green: None,
            red: None,
            relay: None,
            active_low: false,
            relay_pulse_ms: 2000,
        }
    }
}

/// Accept → green on, red off, relay on until the pulse ends; reject → red on, green off;
/// idle → both off (a running relay pulse still ends on time).
pub struct LineIndicator<L: OutputLines> {
    lines: L,
    pulse: Duration,
    relay_off_at: Option<Duration>,
}

impl<L: OutputLines> LineIndicator<L> {
    /// Starts with every line inactive.
    pub fn new(mut lines: L, pulse: Duration) -> Result<Self, IndicatorError> {
        for line in [Line::Green, Line::Red, Line::Relay] {
            lines.set(line, false)?;
        }
        Ok(Self {
            lines,
            pulse,
            relay_off_at: None,
        })
    }
}

impl<L: OutputLines> Indicator for LineIndicator<L> {
    fn signal(&mut self, signal: Signal, now: Duration) -> Result<(), IndicatorError> {
        self.tick(now)?;
        match signal {
            Signal::Accept => {
                self.lines.set(Line::Red, false)?;
                self.lines.set(Line::Green, true)?;
                if self.relay_off_at.is_none() {
                    self.lines.set(Line::Relay, true)?;
                }
                self.relay_off_at = Some(now + self.pulse);
            }
            Signal::Reject => {
                self.lines.set(Line::Green, false)?;
                self.lines.set(Line::Red, true)?;
            }
            Signal::Idle => {
                self.lines.set(Line::Green, false)?;
                self.lines.set(Line::Red, false)?;
            }
        }
        Ok(())
    }

    fn tick(&mut self, now: Duration) -> Result<(), IndicatorError> {
        if self.relay_off_at.is_some_and(|off| now >= off) {
            self.lines.set(Line::Relay, false)?;
            self.relay_off_at = None;
        }
        Ok(())
    }
}

impl<L: OutputLines> Drop for LineIndicator<L> {
    fn drop(&mut self) {
        // Never leave a door unlocked or an LED lit when the terminal stops.
        for line in [Line::Relay, Line::Green, Line::Red] {
            let _ = self.lines.set(line, false);
        }
    }
}

/// A test double at the hardware edge: records every line change (and, as an [`Indicator`],
/// every signal) in a shared list.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub lines: Arc<Mutex<Vec<(Line, bool)>>>,
    pub signals: Arc<Mutex<Vec<Signal>>>,
}

impl OutputLines for Recorder {
    fn set(&mut self, line: Line, active: bool) -> Result<(), IndicatorError> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((line, active));
        Ok(())
    }
}

impl Indicator for Recorder {
    fn signal(&mut self, signal: Signal, _now: Duration) -> Result<(), IndicatorError> {
        self.signals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(signal);
        Ok(())
    }
}

#[cfg(feature = "gpio")]
pub use cdev::CdevLines;

#[cfg(feature = "gpio")]
mod cdev {
    use gpiocdev::line::Value;
    use gpiocdev::Request;

    use super::{IndicatorError, Line, LineParams, OutputLines};

    /// Lines of a Linux GPIO character device (`/dev/gpiochipN`), any board.
    pub struct CdevLines {
        request: Request,
        offsets: [Option<u32>; 3],
    }

    impl CdevLines {
        pub fn open(params: &LineParams) -> Result<Self, IndicatorError> {
            let offsets = [params.green, params.red, params.relay];
            let used: Vec<u32> = offsets.iter().flatten().copied().collect();
            if used.is_empty() {
                return Err(IndicatorError::Gpio(
                    "no green, red or relay line configured".into(),
                ));
            }
            let mut builder = Request::builder();
            // Attributes apply to the lines selected before them.
            builder
                .on_chip(&params.chip)
                .with_consumer("facegate")
                .with_lines(&used)
                .as_output(Value::Inactive);
            if params.active_low {
                builder.as_active_low();
            }
            let request = builder
                .request()
                .map_err(|e| IndicatorError::Gpio(format!("{}: {e}", params.chip)))?;
            Ok(Self { request, offsets })
        }
    }

    impl OutputLines for CdevLines {
        fn set(&mut self, line: Line, active: bool) -> Result<(), IndicatorError> {
            let Some(offset) = self.offsets[line as usize] else {
                return Ok(());
            };
            self.request
                .set_value(offset, Value::from(active))
                .map(|_| ())
                .map_err(|e| IndicatorError::Gpio(format!("line {offset}: {e}")))
        }
    }
}

#[cfg(feature = "rpi")]
pub use rpi::RppalLines;

#[cfg(feature = "rpi")]
mod rpi {
    use rppal::gpio::{Gpio, OutputPin};

    use super::{IndicatorError, Line, LineParams, OutputLines};

    /// Raspberry Pi GPIO through rppal (BCM numbering).
    pub struct RppalLines {
        pins: [Option<OutputPin>; 3],
        active_low: bool,
    }

    impl RppalLines {
        pub fn open(params: &LineParams) -> Result<Self, IndicatorError> {
            let gpio = Gpio::new().map_err(|e| IndicatorError::Gpio(e.to_string()))?;
            let mut pins: [Option<OutputPin>; 3] = [None, None, None];
            for (slot, bcm) in pins
                .iter_mut()
                .zip([params.green, params.red, params.relay])
            {
                if let Some(bcm) = bcm {
                    let bcm = u8::try_from(bcm)
                        .map_err(|_| IndicatorError::Gpio(format!("no BCM pin {bcm}")))?;
                    let pin = gpio
                        .get(bcm)
                        .map_err(|e| IndicatorError::Gpio(format!("BCM {bcm}: {e}")))?;
                    *slot = Some(if params.active_low {
                        pin.into_output_high()
                    } else {
                        pin.into_output_low()
                    });
                }
            }
            Ok(Self {
                pins,
                active_low: params.active_low,
            })
        }
    }

    impl OutputLines for RppalLines {
        fn set(&mut self, line: Line, active: bool) -> Result<(), IndicatorError> {
            if let Some(pin) = self.pins[line as usize].as_mut() {
                if active != self.active_low {
                    pin.set_high();
                } else {
                    pin.set_low();
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(m: u64) -> Duration {
        Duration::from_millis(m)
    }

    #[test]
    fn accept_lights_green_and_pulses_the_relay() {
        let rec = Recorder::default();
        let mut ind = LineIndicator::new(rec.clone(), ms(2000)).unwrap();
        rec.lines.lock().unwrap().clear();
        ind.signal(Signal::Accept, ms(100)).unwrap();
        ind.tick(ms(1500)).unwrap();
        ind.signal(Signal::Idle, ms(1800)).unwrap();
        ind.tick(ms(2099)).unwrap();
        ind.tick(ms(2100)).unwrap();
        ind.signal(Signal::Reject, ms(3000)).unwrap();
        assert_eq!(
            *rec.lines.lock().unwrap(),
            [
                (Line::Red, false),
                (Line::Green, true),
                (Line::Relay, true),
                (Line::Green, false),
                (Line::Red, false),
                (Line::Relay, false),
                (Line::Green, false),
                (Line::Red, true),
            ]
        );
    }

    #[test]
    fn a_second_accept_extends_the_pulse_and_drop_releases_everything() {
        let rec = Recorder::default();
        let mut ind = LineIndicator::new(rec.clone(), ms(1000)).unwrap();
        ind.signal(Signal::Accept, ms(0)).unwrap();
        ind.signal(Signal::Accept, ms(800)).unwrap();
        ind.tick(ms(1200)).unwrap();
        let relay = |rec: &Recorder| {
            rec.lines
                .lock()
                .unwrap()
                .iter()
                .filter(|(l, _)| *l == Line::Relay)
                .map(|&(_, v)| v)
                .collect::<Vec<_>>()
        };
        // Initial off, on once, not yet off at 1.2 s.
        assert_eq!(relay(&rec), [false, true]);
        drop(ind);
        assert_eq!(relay(&rec), [false, true, false]);
        let lines = rec.lines.lock().unwrap();
        assert_eq!(
            lines[lines.len() - 2..],
            [(Line::Green, false), (Line::Red, false)]
        );
    }
}
