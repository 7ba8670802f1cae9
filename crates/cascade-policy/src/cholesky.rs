//! Solving the small symmetric positive-definite systems this crate
//! meets (a ridge regression's normal equations, a logistic fit's Newton
//! step) by their Cholesky factor, row-major.

/// Cholesky factor of the symmetric positive-definite `a` (lower triangle
/// read), row-major.
pub(crate) fn cholesky(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let dot: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                l[i * n + i] = (a[i * n + i] - dot).max(1e-12).sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - dot) / l[j * n + j];
            }
        }
    }
    l
}

/// Solves L y = b.
pub(crate) fn forward(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; n];
    for i in 0..n {
        let dot: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - dot) / l[i * n + i];
    }
    y
}

/// Solves Lᵀ x = y.
pub(crate) fn backward(l: &[f64], n: usize, y: &[f64]) -> Vec<f64> {
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let dot: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - dot) / l[i * n + i];
    }
    x
}

/// Solves `a x = b` for symmetric positive-definite `a` (n × n,
/// row-major; the lower triangle is read).
pub(crate) fn solve(a: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let factor = cholesky(a, n);
    backward(&factor, n, &forward(&factor, n, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_positive_definite_system() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let x = [1.0, -2.0, 0.5];
        let b: Vec<f64> = (0..3).map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum()).collect();
        let solved = solve(&a, 3, &b);
        for (s, e) in solved.iter().zip(&x) {
            assert!((s - e).abs() < 1e-12, "{solved:?}");
        }
    }
}
