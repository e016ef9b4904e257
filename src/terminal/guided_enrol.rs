//! Enrolment at the terminal: the person in front of the camera is guided through a few poses
//! (straight on, turned a little to each side, straight on again after taking glasses off or
//! putting them on), and one template is kept per pose from a frame that passes the quality
//! gates. Several poses make the gallery robust to how people really stand at a door.
//!
//! Pure logic over the pipeline's faces, so it is tested with recorded frames like the rest of
//! the terminal.

use serde::Serialize;

use crate::vision::embed::cosine;
use crate::vision::pipeline::Face;
use crate::vision::quality::{Hint, QualityGates};

/// One pose the person is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pose {
    /// Looking straight at the camera.
    Front,
    /// Head turned a little to either side (whichever the person picks: a camera mirrors, so
    /// "left" would confuse).
    Side,
    /// Turned a little to the side opposite to [`Pose::Side`].
    OtherSide,
    /// Straight on again, after taking glasses off or putting them on.
    Glasses,
}

impl Pose {
    /// What the display asks for.
    pub fn prompt(self) -> &'static str {
        match self {
            Pose::Front => "Look at the camera",
            Pose::Side => "Turn a little to one side",
            Pose::OtherSide => "Now to the other side",
            Pose::Glasses => "Glasses off (or on), look at the camera",
        }
    }
}

/// Settings of a guided enrolment.
#[derive(Debug, Clone)]
pub struct GuideParams {
    pub poses: Vec<Pose>,
    /// The same gates the terminal decides with.
    pub gates: QualityGates,
    /// Straight on means a head turn of at most this.
    pub front_max_yaw_deg: f32,
    /// A side pose means a head turn of at least this (and at most the gates' maximum).
    pub side_min_yaw_deg: f32,
    /// A capture must match one of the earlier captures at least this well: nobody else slips
    /// into the enrolment, while the pose may drift step by step. The gallery's threshold.
    pub same_person: f32,
}

impl GuideParams {
    pub fn new(gates: QualityGates, same_person: f32) -> Self {
        Self {
            poses: vec![Pose::Front, Pose::Side, Pose::OtherSide, Pose::Glasses],
            gates,
            front_max_yaw_deg: 8.0,
            side_min_yaw_deg: 10.0,
            same_person,
        }
    }
}

/// A kept frame.
#[derive(Debug, Clone, Serialize)]
pub struct Capture {
    pub pose: Pose,
    pub yaw_deg: f32,
    /// Best similarity to the earlier captures (1 for the first).
    pub similarity: f32,
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

/// What one frame did to the enrolment, for the display and the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Keep going: ask for this pose.
    Ask(Pose),
    /// A face is there but fails a quality gate.
    Hint(Hint),
    /// More than one person is close to the camera: nobody is captured.
    OnePersonOnly,
    /// The face does not match the person captured so far.
    SomeoneElse { similarity: f32 },
    /// This frame was kept for the pose.
    Captured(Pose),
    /// Every pose is captured.
    Done,
}

/// The state of one guided enrolment.
#[derive(Debug)]
pub struct Guide {
    params: GuideParams,
    captures: Vec<Capture>,
    /// Sign of the head turn of the first side capture.
    side_sign: Option<f32>,
}

impl Guide {
    pub fn new(params: GuideParams) -> Self {
        Self {
            params,
            captures: Vec::new(),
            side_sign: None,
        }
    }

    pub fn captures(&self) -> &[Capture] {
        &self.captures
    }

    pub fn total(&self) -> usize {
        self.params.poses.len()
    }

    /// The pose asked for now, or `None` when all are captured.
    pub fn next_pose(&self) -> Option<Pose> {
        self.params.poses.get(self.captures.len()).copied()
    }

    /// The poses not captured (yet).
    pub fn missing(&self) -> &[Pose] {
        &self.params.poses[self.captures.len().min(self.params.poses.len())..]
    }

    fn pose_matches(&self, pose: Pose, yaw: f32) -> bool {
        let p = &self.params;
        let side = yaw.abs() >= p.side_min_yaw_deg && yaw.abs() <= p.gates.max_yaw_deg;
        match pose {
            Pose::Front | Pose::Glasses => yaw.abs() <= p.front_max_yaw_deg,
            Pose::Side => side,
            Pose::OtherSide => side && self.side_sign.is_some_and(|s| s * yaw < 0.0),
        }
    }

    /// Look at one analysed frame's faces.
    pub fn step(&mut self, faces: &[Face]) -> Progress {
        let Some(pose) = self.next_pose() else {
            return Progress::Done;
        };
        let gates = &self.params.gates;
        let near: Vec<&Face> = faces
            .iter()
            .filter(|f| f.quality.face_size >= gates.ignore_below_px)
            .collect();
        let face = match near.as_slice() {
            [] => return Progress::Ask(pose),
            [one] => *one,
            _ => return Progress::OnePersonOnly,
        };
        // The turn is asked for, so the gates' "look at the camera" only applies beyond the
        // largest side turn, which the gates check themselves.
        if let Some(hint) = gates.check(&face.quality) {
            return Progress::Hint(hint);
        }
        let similarity = self
            .captures
            .iter()
            .map(|c| cosine(&c.embedding, &face.embedding))
            .reduce(f32::max)
            .unwrap_or(1.0);
        if similarity < self.params.same_person {
            return Progress::SomeoneElse { similarity };
        }
        let yaw = face.quality.yaw_deg;
        if !self.pose_matches(pose, yaw) {
            return Progress::Ask(pose);
        }
        if pose == Pose::Side {
            self.side_sign = Some(yaw.signum());
        }
        self.captures.push(Capture {
            pose,
            yaw_deg: yaw,
            similarity,
            embedding: face.embedding.clone(),
        });
        if self.next_pose().is_none() {
            Progress::Done
        } else {
            Progress::Captured(pose)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::detect::Detection;
    use crate::vision::quality::Quality;

    fn face(yaw: f32, size: f32, embedding: [f32; 2]) -> Face {
        let e = crate::vision::embed::l2_normalised(&embedding).unwrap();
        Face {
            detection: Detection {
                bbox: [0.0, 0.0, size, size],
                score: 0.99,
                landmarks: [[0.0; 2]; 5],
            },
            quality: Quality {
                face_size: size,
                brightness: 120.0,
                sharpness: 200.0,
                yaw_deg: yaw,
            },
            liveness: None,
            embedding: e,
        }
    }

    fn guide() -> Guide {
        Guide::new(GuideParams::new(QualityGates::default(), 0.5))
    }

    #[test]
    fn poses_are_taken_in_order_and_sides_are_opposite() {
        let mut g = guide();
        let me = [1.0, 0.1];
        // A turned face first: the guide still waits for the front.
        assert_eq!(g.step(&[face(20.0, 90.0, me)]), Progress::Ask(Pose::Front));
        assert_eq!(
            g.step(&[face(3.0, 90.0, me)]),
            Progress::Captured(Pose::Front)
        );
        assert_eq!(
            g.step(&[face(-18.0, 90.0, me)]),
            Progress::Captured(Pose::Side)
        );
        // The same side again is not the other side.
        assert_eq!(
            g.step(&[face(-25.0, 90.0, me)]),
            Progress::Ask(Pose::OtherSide)
        );
        assert_eq!(
            g.step(&[face(14.0, 90.0, me)]),
            Progress::Captured(Pose::OtherSide)
        );
        assert_eq!(g.step(&[face(-2.0, 90.0, me)]), Progress::Done);
        let poses: Vec<Pose> = g.captures().iter().map(|c| c.pose).collect();
        assert_eq!(
            poses,
            [Pose::Front, Pose::Side, Pose::OtherSide, Pose::Glasses]
        );
        assert!(g.missing().is_empty());
    }

    #[test]
    fn gates_crowds_and_strangers_capture_nothing() {
        let mut g = guide();
        let me = [1.0, 0.1];
        let other = [0.1, 1.0];
        assert_eq!(
            g.step(&[face(0.0, 50.0, me)]),
            Progress::Hint(Hint::MoveCloser)
        );
        assert_eq!(
            g.step(&[face(0.0, 90.0, me), face(0.0, 80.0, other)]),
            Progress::OnePersonOnly
        );
        // A background face too small to matter does not count as a second person.
        assert_eq!(
            g.step(&[face(0.0, 90.0, me), face(0.0, 20.0, other)]),
            Progress::Captured(Pose::Front)
        );
        match g.step(&[face(-15.0, 90.0, other)]) {
            Progress::SomeoneElse { similarity } => assert!(similarity < 0.5),
            p => panic!("{p:?}"),
        }
        assert_eq!(g.captures().len(), 1);
        assert_eq!(g.missing(), [Pose::Side, Pose::OtherSide, Pose::Glasses]);
    }
}
