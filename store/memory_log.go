package store

import (
	"context"
	"fmt"
	"time"
)

// memLog is a bounded in-memory log; ids are sequence numbers.
type memLog struct {
	next    uint64
	records []Record
	touched time.Time
}

// Append implements Store. Memory logs hold at most MaxLogLen/100
// records: a single instance is for development and small sites.
func (m *Memory) Append(_ context.Context, log string, record []byte) error {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	l := m.logs[log]
	if l == nil {
		l = &memLog{}
		m.logs[log] = l
	}
	l.next++
	l.records = append(l.records, Record{ID: fmt.Sprintf("%020d", l.next), Value: append([]byte(nil), record...)})
	if limit := MaxLogLen / 100; len(l.records) > limit {
		l.records = append(l.records[:0:0], l.records[len(l.records)-limit:]...)
	}
	l.touched = time.Now()
	return nil
}

// Range implements Store.
func (m *Memory) Range(_ context.Context, log, after string, max int) ([]Record, error) {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	l := m.logs[log]
	if l == nil || time.Since(l.touched) > LogTTL {
		return nil, nil
	}
	var out []Record
	for _, r := range l.records {
		if r.ID > after && len(out) < max {
			out = append(out, Record{ID: r.ID, Value: append([]byte(nil), r.Value...)})
		}
	}
	return out, nil
}

// Latest implements Store.
func (m *Memory) Latest(_ context.Context, log string, max int) ([]Record, error) {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	l := m.logs[log]
	if l == nil || time.Since(l.touched) > LogTTL {
		return nil, nil
	}
	out := make([]Record, 0, min(max, len(l.records)))
	for i := len(l.records) - 1; i >= 0 && len(out) < max; i-- {
		r := l.records[i]
		out = append(out, Record{ID: r.ID, Value: append([]byte(nil), r.Value...)})
	}
	return out, nil
}
