"""Analysis on embedding arrays: numpy/scipy/sklearn only (torch never required)."""
