"""``split``: class selection and the greedy class-disjoint fold split."""
