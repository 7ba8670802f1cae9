//! The one dense linear-algebra routine the baselines need: the inverse of a
//! symmetric positive-definite matrix (EASE inverts X^T X + λI).

use rayon::prelude::*;

/// Inverts the symmetric positive-definite `n × n` row-major matrix `a` in
/// place by Gauss–Jordan elimination without pivoting (safe for SPD input,
/// whose pivots stay positive). 2n³ flops; rows are updated in parallel and
/// each update is a contiguous axpy, which the compiler vectorises.
///
/// Returns `Err` with the pivot index if a pivot is not positive (the input
/// was not positive definite).
pub fn invert_spd_in_place(a: &mut [f64], n: usize) -> Result<(), usize> {
    assert_eq!(a.len(), n * n, "matrix must be n × n");
    let mut pivot_row = vec![0f64; n];
    for k in 0..n {
        let pivot = a[k * n + k];
        if pivot <= 0.0 || !pivot.is_finite() {
            return Err(k);
        }
        // Row k becomes row k / pivot, with column k holding 1/pivot (the
        // in-place trick: column k stores the inverse's column as we go).
        let inv = 1.0 / pivot;
        let row_k = &mut a[k * n..(k + 1) * n];
        for value in row_k.iter_mut() {
            *value *= inv;
        }
        row_k[k] = inv;
        pivot_row.copy_from_slice(row_k);
        a.par_chunks_mut(n).enumerate().filter(|(i, _)| *i != k).for_each(|(_, row)| {
            let factor = row[k];
            if factor == 0.0 {
                return;
            }
            for (value, &p) in row.iter_mut().zip(&pivot_row) {
                *value -= factor * p;
            }
            row[k] = -factor * inv;
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn multiply(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for k in 0..n {
                for j in 0..n {
                    c[i * n + j] += a[i * n + k] * b[k * n + j];
                }
            }
        }
        c
    }

    #[test]
    fn inverts_a_hand_checked_matrix() {
        // [[4,2],[2,3]]^-1 = 1/8 [[3,-2],[-2,4]]
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        invert_spd_in_place(&mut a, 2).unwrap();
        let expected = [0.375, -0.25, -0.25, 0.5];
        for (x, y) in a.iter().zip(expected) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn rejects_indefinite_input() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(invert_spd_in_place(&mut a, 2), Err(1));
    }

    proptest! {
        #[test]
        fn a_times_inverse_is_identity(entries in prop::collection::vec(-1.0f64..1.0, 36), ridge in 0.1f64..5.0) {
            let n = 6;
            // M^T M + ridge I is SPD.
            let mut a = vec![0.0; n * n];
            for i in 0..n { for j in 0..n { for k in 0..n {
                a[i * n + j] += entries[k * n + i] * entries[k * n + j];
            }}}
            for i in 0..n { a[i * n + i] += ridge; }
            let mut inverse = a.clone();
            invert_spd_in_place(&mut inverse, n).unwrap();
            let product = multiply(&a, &inverse, n);
            for i in 0..n { for j in 0..n {
                let expected = if i == j { 1.0 } else { 0.0 };
                prop_assert!((product[i * n + j] - expected).abs() < 1e-8);
            }}
        }
    }
}
