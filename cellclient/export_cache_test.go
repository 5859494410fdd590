package cellclient

// SetBeforeCachePutForTest runs f before every cacheable reply is put in
// a cache (nil removes it). Tests use it to hold a reply back while an
// invalidation overtakes it.
func SetBeforeCachePutForTest(f func()) { beforePut = f }
