# genes x conditions in; the rotation, the conditions' scores and the genes' centre out
pca <- function(Y, n, center = TRUE) {
  offset <- if (center) MatrixGenerics::rowMeans2(Y) else rep(0, nrow(Y))
  fit <- if (min(dim(Y)) <= 2 * n) {
    prcomp(t(Y), rank. = n, center = center, scale. = FALSE)
  } else {
    irlba::prcomp_irlba(t(Y), n = n, center = center, scale. = FALSE)
  }
  list(coordsystem = unname(fit$rotation), embedding = unname(t(fit$x)), offset = offset)
}

# Y features x samples, X samples x covariates; the penalty enters squared and scaled by sqrt(sum of weights)
ridge_regression <- function(Y, X, ridge_penalty = 0, weights = rep(1, nrow(X))) {
  penalty <- if (is.matrix(ridge_penalty)) ridge_penalty else diag(ridge_penalty, nrow = ncol(X))
  extra <- sqrt(sum(weights)) * crossprod(penalty)
  design <- rbind(X * sqrt(weights), extra)
  response <- cbind(t(t(Y) * sqrt(weights)), matrix(0, nrow = nrow(Y), ncol = ncol(X)))
  coefficients <- t(solve(qr(design), t(response)))
  colnames(coefficients) <- colnames(X)
  coefficients
}
