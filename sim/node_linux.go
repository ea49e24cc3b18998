package sim

import (
	"os/exec"
	"syscall"
)

// setNodeProcAttr has the kernel kill btcd when the process that started
// it dies without Node.Close (a test binary killed on timeout, say).
func setNodeProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
