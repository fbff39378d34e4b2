"""The DLL model, the marginal model, their training and the estimator."""
