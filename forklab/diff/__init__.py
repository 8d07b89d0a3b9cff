"""Running one sequence of system calls on the model and on the host kernel, and comparing."""
