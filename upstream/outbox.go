package upstream

import (
	"context"
	"sync"
	"time"
)

// outbox is the Manager's Sink as the Manager calls it: each call is queued
// in the order the Manager decided it, under the Manager's lock, and made
// on the outbox's own goroutine with no lock of the Manager held. So the
// miner side may take its own locks, and call back into the Manager, while
// it handles a job or a switch: no lock is held across the two packages.
// Verdict is not queued: it carries a pointer valid only during the call
// and the Manager holds no lock when it passes it on.
type outbox struct {
	sink Sink

	mu    sync.Mutex // a leaf: held only to append or take the queue
	queue []func(Sink)
	kick  chan struct{}
}

func newOutbox(sink Sink) *outbox {
	return &outbox{sink: sink, kick: make(chan struct{}, 1)}
}

func (o *outbox) push(f func(Sink)) {
	o.mu.Lock()
	o.queue = append(o.queue, f)
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// run makes the queued calls until ctx is done, then makes those still
// queued and returns.
func (o *outbox) run(ctx context.Context) {
	var batch []func(Sink)
	for {
		select {
		case <-o.kick:
		case <-ctx.Done():
			o.drain(batch)
			return
		}
		batch = o.drain(batch)
	}
}

func (o *outbox) drain(batch []func(Sink)) []func(Sink) {
	for {
		o.mu.Lock()
		batch, o.queue = o.queue, batch[:0]
		o.mu.Unlock()
		if len(batch) == 0 {
			return batch
		}
		for i, f := range batch {
			f(o.sink)
			batch[i] = nil
		}
	}
}

func (o *outbox) Publish(lane int, s *Session, j *Job, switched bool) {
	o.push(func(k Sink) { k.Publish(lane, s, j, switched) })
}

func (o *outbox) AllDown() { o.push(func(k Sink) { k.AllDown() }) }

func (o *outbox) Serve(shares []Share) { o.push(func(k Sink) { k.Serve(shares) }) }

func (o *outbox) TimeSwitch(lane int, pool string, since time.Time, done func(time.Duration)) {
	o.push(func(k Sink) { k.TimeSwitch(lane, pool, since, done) })
}

func (o *outbox) Verdict(s *Session, r *Verdict) { o.sink.Verdict(s, r) }

// inbox takes the miner side's requests (Lanes, Authorize) without making
// the caller, a gnet event loop, wait for the Manager's lock: they are
// queued and applied by Run.
type inbox struct {
	mu    sync.Mutex // a leaf
	queue []func()
	kick  chan struct{}
}

func newInbox() *inbox { return &inbox{kick: make(chan struct{}, 1)} }

func (in *inbox) push(f func()) {
	in.mu.Lock()
	in.queue = append(in.queue, f)
	in.mu.Unlock()
	select {
	case in.kick <- struct{}{}:
	default:
	}
}

func (in *inbox) take() []func() {
	in.mu.Lock()
	defer in.mu.Unlock()
	q := in.queue
	in.queue = nil
	return q
}
