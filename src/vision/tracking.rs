//! Detection across the frames of one video: the whole frame now and then, and in between only
//! around the faces already found ([`Mtcnn::detect_tracked`](super::detect::Mtcnn)).

use std::borrow::Cow;

use image::RgbImage;

use crate::vision::detect::Detection;
use crate::vision::pipeline::{Pipeline, PipelineError, StageTimes};

/// What the last frame found, and when the whole frame was last searched.
#[derive(Debug, Default, Clone)]
pub struct FaceTracker {
    previous: Vec<Detection>,
    /// Analysed frames since the last whole-frame search.
    since_full: u32,
    /// The last faces were found on a brightened copy: keep searching the way that worked.
    enhanced: bool,
    /// Frames searched whole and around tracked faces (for reports).
    pub full_frames: u64,
    pub tracked_frames: u64,
}

impl FaceTracker {
    /// The faces of the next frame of the video and the image they were found in (see
    /// [`Pipeline::detect`]).
    pub fn detect<'a>(
        &mut self,
        pipeline: &Pipeline,
        image: &'a RgbImage,
        times: &mut StageTimes,
    ) -> Result<(Vec<Detection>, Cow<'a, RgbImage>), PipelineError> {
        let params = &pipeline.detector().params().tracking;
        let due = self.since_full + 1 >= params.full_every.max(1);
        if params.enabled && !self.previous.is_empty() && !due && !self.enhanced {
            let faces =
                pipeline
                    .detector()
                    .detect_tracked(image, &self.previous, &mut times.detect)?;
            log::debug!(
                "tracked search: {:?} -> {:?}",
                self.previous
                    .iter()
                    .map(|d| d.bbox.map(|v| v.round() as i32))
                    .collect::<Vec<_>>(),
                faces
                    .iter()
                    .map(|d| (d.bbox.map(|v| v.round() as i32), d.score))
                    .collect::<Vec<_>>()
            );
            if !faces.is_empty() {
                self.since_full += 1;
                self.tracked_frames += 1;
                // A face that left may have been replaced by another elsewhere: look at the
                // whole of the next frame.
                if faces.len() < self.previous.len() {
                    self.since_full = u32::MAX - 1;
                }
                self.previous = faces.clone();
                return Ok((faces, Cow::Borrowed(image)));
            }
        }
        let (faces, used) = pipeline.detect(image, times)?;
        self.full_frames += 1;
        self.since_full = 0;
        self.enhanced = matches!(used, Cow::Owned(_));
        self.previous = faces.clone();
        Ok((faces, used))
    }

    /// Start over (a new video, or the camera came back).
    pub fn reset(&mut self) {
        self.previous.clear();
        self.since_full = 0;
        self.enhanced = false;
    }
}
