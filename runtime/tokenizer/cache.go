package tokenizer

import (
	"hash/maphash"
	"strings"
	"sync"
)

// pieceCache remembers the ids of pieces that needed merging, so repeated
// words merge once. It is sharded to keep lock contention low; a full
// shard is emptied rather than tracked for recency.
type pieceCache struct {
	once   sync.Once
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const (
	cacheShards   = 32
	cacheShardMax = 4096 // entries per shard
	cacheMaxPiece = 64   // longer pieces are not cached
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]int32
}

func (c *pieceCache) shard(p string) *cacheShard {
	c.once.Do(func() { c.seed = maphash.MakeSeed() })
	return &c.shards[maphash.String(c.seed, p)%cacheShards]
}

func (c *pieceCache) get(p string) ([]int32, bool) {
	if len(p) > cacheMaxPiece {
		return nil, false
	}
	s := c.shard(p)
	s.mu.RLock()
	ids, ok := s.m[p]
	s.mu.RUnlock()
	return ids, ok
}

func (c *pieceCache) put(p string, ids []int32) {
	if len(p) > cacheMaxPiece {
		return
	}
	s := c.shard(p)
	v := append([]int32(nil), ids...)
	s.mu.Lock()
	if s.m == nil || len(s.m) >= cacheShardMax {
		s.m = make(map[string][]int32)
	}
	s.m[strings.Clone(p)] = v
	s.mu.Unlock()
}
