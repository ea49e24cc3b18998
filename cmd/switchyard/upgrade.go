package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"switchyard/app"
	"switchyard/config"
)

// handoverFlags are run's flags for upgrading without dropping a miner
// (README "Upgrading").
type handoverFlags struct {
	serve    *bool
	takeover *bool
	socket   *string
	timeout  *time.Duration
}

func addHandoverFlags(fs *flag.FlagSet) handoverFlags {
	return handoverFlags{
		serve:    fs.Bool("handover", false, "listen on the handover socket so that a new process (-takeover) can take the miners over without a disconnect"),
		takeover: fs.Bool("takeover", false, "take the miners over from the switchyard listening on the handover socket (none: start as usual); implies -handover"),
		socket:   fs.String("handover-socket", "", "the handover socket (default: the config file's path + \".handover\")"),
		timeout:  fs.Duration("takeover-timeout", 30*time.Second, "with -takeover: how long this process's active pool has to be live before the old process keeps its miners"),
	}
}

// stallEnv is a fault-injection knob for tests: a taking-over process
// stops after receiving that many batches of miners.
const stallEnv = "SWITCHYARD_TAKEOVER_STALL_AFTER"

// startApp starts switchyard, taking the miners over from the old process
// when asked, and serves the handover socket when asked. handedOver is
// closed once a newer process took the miners (nil: never).
func startApp(ctx context.Context, hf handoverFlags, cfgPath string, cfg *config.Config, log zerolog.Logger) (a *app.App, handedOver <-chan struct{}, err error) {
	serve := *hf.serve || *hf.takeover
	sock := *hf.socket
	if sock == "" {
		sock = app.DefaultHandoverSocket(cfgPath)
	}
	var opts []app.Option
	if serve {
		opts = append(opts, app.WithHandover())
	}
	if *hf.takeover {
		ho := app.HandoverOptions{LiveTimeout: *hf.timeout}
		ho.StallAfterBatches, _ = strconv.Atoi(os.Getenv(stallEnv))
		a, err = app.Takeover(ctx, sock, cfg, log, version, ho, opts...)
		if errors.Is(err, app.ErrNoHandover) && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
			log.Info().Str("socket", sock).Msg("takeover: no switchyard to take over from; starting as usual")
			a, err = app.Start(ctx, cfg, log, version, opts...)
		}
	} else {
		a, err = app.Start(ctx, cfg, log, version, opts...)
	}
	if err != nil || !serve {
		return a, nil, err
	}
	done, err := a.ServeHandover(ctx, sock)
	if err != nil {
		log.Error().Err(err).Msg("handover socket not served: an upgrade will have to restart the miners")
		return a, nil, nil
	}
	return a, done, nil
}
