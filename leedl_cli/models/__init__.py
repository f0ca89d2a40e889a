"""Plain nn.Modules (architectures) with no training logic; a task receives one."""
