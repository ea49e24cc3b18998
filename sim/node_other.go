//go:build !linux

package sim

import "os/exec"

// setNodeProcAttr does nothing here: only Linux has a parent-death signal.
func setNodeProcAttr(*exec.Cmd) {}
