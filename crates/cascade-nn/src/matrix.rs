//! Row-major matrix products on plain `f32` slices, for fused kernels that
//! compute their own gradients: candle's optimised CPU matmul without a graph.
//!
//! Shapes: `a` is m × k; the name says which operand is transposed.

use candle_core::{Device, Tensor};

fn tensor(values: &[f32], rows: usize, cols: usize) -> candle_core::Result<Tensor> {
    Tensor::from_slice(values, (rows, cols), &Device::Cpu)
}

fn into_vec(product: Tensor) -> candle_core::Result<Vec<f32>> {
    product.flatten_all()?.to_vec1()
}

/// `a · bᵀ` for `a` m × k and `b` n × k: m × n (a layer's forward, X · Wᵀ).
pub fn a_bt(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> candle_core::Result<Vec<f32>> {
    into_vec(tensor(a, m, k)?.matmul(&tensor(b, n, k)?.t()?)?)
}

/// `a · b` for `a` m × k and `b` k × n: m × n (the input gradient, dY · W).
pub fn a_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> candle_core::Result<Vec<f32>> {
    into_vec(tensor(a, m, k)?.matmul(&tensor(b, k, n)?)?)
}

/// `aᵀ · b` for `a` m × k and `b` m × n: k × n (the weight gradient, dYᵀ · X).
pub fn at_b(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> candle_core::Result<Vec<f32>> {
    into_vec(tensor(a, m, k)?.t()?.matmul(&tensor(b, m, n)?)?)
}

/// ⟨a, b⟩ over eight running partial sums. One running float sum must be
/// added in order, element by element, which the compiler cannot vectorise;
/// eight independent ones it can.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each product against the textbook triple loop.
    #[test]
    fn products_match_the_definition() {
        let (m, k, n) = (3, 4, 2);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b_nk: Vec<f32> = (0..n * k).map(|i| (i as f32).sin()).collect();
        let b_kn: Vec<f32> = (0..k * n).map(|i| (i as f32).cos()).collect();
        let c_mn: Vec<f32> = (0..m * n).map(|i| i as f32 - 1.0).collect();
        let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(x, y)| (x - y).abs() < 1e-5);

        let mut expected = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                expected[i * n + j] = (0..k).map(|p| a[i * k + p] * b_nk[j * k + p]).sum();
            }
        }
        assert!(close(&a_bt(&a, &b_nk, m, k, n).unwrap(), &expected));

        for i in 0..m {
            for j in 0..n {
                expected[i * n + j] = (0..k).map(|p| a[i * k + p] * b_kn[p * n + j]).sum();
            }
        }
        assert!(close(&a_b(&a, &b_kn, m, k, n).unwrap(), &expected));

        let mut expected = vec![0f32; k * n];
        for p in 0..k {
            for j in 0..n {
                expected[p * n + j] = (0..m).map(|i| a[i * k + p] * c_mn[i * n + j]).sum();
            }
        }
        assert!(close(&at_b(&a, &c_mn, m, k, n).unwrap(), &expected));
    }

    #[test]
    fn dot_matches_the_definition_at_every_length() {
        for n in [0, 1, 7, 8, 9, 64, 67] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).cos()).collect();
            let expected: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - expected).abs() < 1e-5, "length {n}");
        }
    }
}
