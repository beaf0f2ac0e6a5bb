package uploads

import "sync"

// maxIndexedRequests bounds how many requests' records the index keeps;
// the least recently used request is forgotten first (and read again from
// the store when next needed).
const maxIndexedRequests = 512

// recordIndex keeps the upload records this process read or wrote, so
// that checking a new file against a request's limits costs one listing of
// the request's records rather than reading every one of them. The store's
// listing stays the truth about which uploads exist; this process is the
// only writer of a request's records (tusd's locks are in memory too), so
// a kept record is current.
type recordIndex struct {
	mu   sync.Mutex
	reqs map[string]*indexedRequest
	tick uint64
}

type indexedRequest struct {
	recs map[string]record
	used uint64
}

// get returns the kept records among ids and the ids it does not hold.
// Records not in ids (deleted from the store) are forgotten.
func (x *recordIndex) get(requestID string, ids []string) (map[string]record, []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[string]record, len(ids))
	var missing []string
	r := x.request(requestID)
	for _, id := range ids {
		if rec, ok := r.recs[id]; ok {
			out[id] = rec
		} else {
			missing = append(missing, id)
		}
	}
	for id := range r.recs {
		if _, ok := out[id]; !ok {
			delete(r.recs, id)
		}
	}
	return out, missing
}

// put keeps rec unless a newer version of it is kept already.
func (x *recordIndex) put(rec record) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.request(rec.Request)
	if old, ok := r.recs[rec.ID]; ok && old.UpdatedAt.After(rec.UpdatedAt) {
		return
	}
	r.recs[rec.ID] = rec
}

// remove forgets an upload.
func (x *recordIndex) remove(requestID, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r, ok := x.reqs[requestID]; ok {
		delete(r.recs, id)
	}
}

// request returns the entry of requestID, making it (and evicting the least
// recently used one) when needed. x.mu is held.
func (x *recordIndex) request(requestID string) *indexedRequest {
	if x.reqs == nil {
		x.reqs = map[string]*indexedRequest{}
	}
	x.tick++
	r, ok := x.reqs[requestID]
	if !ok {
		if len(x.reqs) >= maxIndexedRequests {
			var oldest string
			var used uint64 = ^uint64(0)
			for id, e := range x.reqs {
				if e.used < used {
					oldest, used = id, e.used
				}
			}
			delete(x.reqs, oldest)
		}
		r = &indexedRequest{recs: map[string]record{}}
		x.reqs[requestID] = r
	}
	r.used = x.tick
	return r
}
