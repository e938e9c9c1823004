package cache

import (
	"fmt"
	"testing"
	"time"
)

func TestBoundedEvictsAndExpires(t *testing.T) {
	c := New[string, int](320, 0)
	for i := 0; i < 10_000; i++ {
		c.Put(fmt.Sprint(i), i)
	}
	if n := c.Len(); n > 320 {
		t.Fatalf("len %d > 320", n)
	}
	c.Put("x", 7)
	if v, ok := c.Get("x"); !ok || v != 7 {
		t.Fatalf("get x = %v %v", v, ok)
	}
	c.PutTTL("short", 1, time.Nanosecond)
	time.Sleep(time.Millisecond)
	if _, ok := c.Get("short"); ok {
		t.Fatal("expired entry returned")
	}
}
