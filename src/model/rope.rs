//! Rotary position embedding of the patch tokens, as EVA-02 uses it: timm's
//! `RotaryEmbeddingCat` with integer grid positions (optionally rescaled to the pretraining grid,
//! `ref_feat_shape`), inverse-frequency bands and interleaved pairs.
//!
//! Each head's width `d` holds `d / 4` bands for the row position, then `d / 4` for the column
//! position; pair `(2i, 2i + 1)` of q and k is rotated by angle `i` of that list. The class token
//! is not rotated. The rotation is candle-nn's `rope_i`, which runs on every backend.

use candle_core::{DType, Device, Result, Tensor};

use super::config::{EvaConfig, RopeConfig};

/// The cosines and sines of every token's rotation, ready for q and k.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    /// `[tokens, width / 2]`: per token, the angles' cosines for every head side by side
    /// (1 for prefix tokens).
    cos: Tensor,
    /// `[tokens, width / 2]`: the sines (0 for prefix tokens).
    sin: Tensor,
    /// Query (and key) width: heads times head width.
    width: usize,
}

impl RotaryEmbedding {
    /// The rotation tables for the configuration's patch grid, in `dtype` on `device`.
    pub fn new(config: &EvaConfig, rope: &RopeConfig, dtype: DType, device: &Device) -> Result<Self> {
        let (cos, sin) = angle_tables(config, rope);
        let rows = config.num_prefix_tokens() + config.num_patches();
        let half_width = config.embed_dim / 2;
        let table = |values: Vec<f32>| Tensor::from_vec(values, (rows, half_width), device)?.to_dtype(dtype);
        Ok(Self { cos: table(cos)?, sin: table(sin)?, width: config.embed_dim })
    }

    /// Rotates the q and k parts of a fused `[batch, tokens, 3 * width]` projection (q, k, v
    /// side by side); v is left as it is.
    pub fn apply_to_qkv(&self, qkv: &Tensor) -> Result<Tensor> {
        let (batch, tokens, _) = qkv.dims3()?;
        let rotate = |start: usize| -> Result<Tensor> {
            let part = qkv.narrow(2, start, self.width)?.contiguous()?.reshape((batch, 1, tokens, self.width))?;
            candle_nn::rotary_emb::rope_i(&part, &self.cos, &self.sin)?.reshape((batch, tokens, self.width))
        };
        let v = qkv.narrow(2, 2 * self.width, self.width)?;
        Tensor::cat(&[&rotate(0)?, &rotate(self.width)?, &v], 2)
    }
}

/// Cosines and sines, `[tokens][heads * head_dim / 2]` flattened, computed in f32 as timm does
/// (positions, bands and their products in f32); prefix tokens get the identity rotation.
fn angle_tables(config: &EvaConfig, rope: &RopeConfig) -> (Vec<f32>, Vec<f32>) {
    let bands = inverse_frequencies(config.head_dim() / 4, rope.temperature);
    let grid = config.grid_size();
    let positions = |reference: Option<usize>| -> Vec<f32> {
        (0..grid)
            .map(|i| match reference {
                // timm: `t / feat_shape * ref_feat_shape`, in that order, in f32.
                Some(r) => i as f32 / grid as f32 * r as f32,
                None => i as f32,
            })
            .collect()
    };
    let rows = positions(rope.ref_feat_shape.map(|[h, _]| h));
    let cols = positions(rope.ref_feat_shape.map(|[_, w]| w));
    let half_width = config.embed_dim / 2;
    let prefix = config.num_prefix_tokens();
    let mut cos = vec![1f32; prefix * half_width];
    let mut sin = vec![0f32; prefix * half_width];
    for &row in &rows {
        for &col in &cols {
            let head: Vec<f32> = bands.iter().map(|b| row * b).chain(bands.iter().map(|b| col * b)).collect();
            for _ in 0..config.num_heads {
                // sin and cos of the f32 angle, rounded once from f64.
                cos.extend(head.iter().map(|&a| f64::from(a).cos() as f32));
                sin.extend(head.iter().map(|&a| f64::from(a).sin() as f32));
            }
        }
    }
    (cos, sin)
}

/// timm's `freq_bands(n, temperature, step=1)`: `1 / temperature^(j / n)` for `j < n`, in f32.
fn inverse_frequencies(n: usize, temperature: f64) -> Vec<f32> {
    (0..n).map(|j| 1.0 / (temperature as f32).powf(j as f32 / n as f32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::EvaConfig;
    use serde_json::{Map, json};

    fn small_config() -> EvaConfig {
        let args = json!({"embed_dim": 16, "num_heads": 2, "depth": 1, "img_size": 42, "ref_feat_shape": 2});
        EvaConfig::for_architecture("eva02_tiny_patch14_336", args.as_object().unwrap_or(&Map::new())).unwrap()
    }

    #[test]
    fn pairs_are_rotated_by_their_position_and_the_class_token_is_not() -> Result<()> {
        let config = small_config();
        let rope = RotaryEmbedding::new(&config, &config.rope.unwrap(), DType::F64, &Device::Cpu)?;
        // tokens: class + 3x3 patches; width 16 (2 heads of 8, 2 bands per axis).
        let qkv = Tensor::ones((1, 10, 48), DType::F64, &Device::Cpu)?;
        let out = rope.apply_to_qkv(&qkv)?.to_vec3::<f64>()?;
        assert!(out[0][0].iter().all(|&v| v == 1.0), "the class token is rotated");
        assert!(out[0][5][32..].iter().all(|&v| v == 1.0), "v is rotated");
        // Patch (1, 2) is token 1 + 1 * 3 + 2 = 6; positions rescaled to the 2x2 reference grid.
        let (row, col) = (1.0f64 / 3.0 * 2.0, 2.0f64 / 3.0 * 2.0);
        let bands = [1.0, 0.01]; // 10000^(-j/2)
        let angles = [row * bands[0], row * bands[1], col * bands[0], col * bands[1]];
        for head in 0..2 {
            for (pair, angle) in angles.iter().enumerate() {
                let i = head * 8 + 2 * pair;
                let (x0, x1) = (out[0][6][i], out[0][6][i + 1]);
                assert!((x0 - (angle.cos() - angle.sin())).abs() < 1e-6, "q pair {pair} of head {head}: {x0}");
                assert!((x1 - (angle.sin() + angle.cos())).abs() < 1e-6, "q pair {pair} of head {head}: {x1}");
                assert!((out[0][6][16 + i] - x0).abs() < 1e-12, "k is rotated like q");
            }
        }
        Ok(())
    }

    #[test]
    fn bands_follow_timm() {
        let bands = inverse_frequencies(16, 10000.0);
        assert_eq!(bands[0], 1.0);
        assert!((bands[8] - 0.01).abs() < 1e-8);
        assert!((bands[15] - 10000f32.powf(-15.0 / 16.0)).abs() < 1e-9);
    }
}
