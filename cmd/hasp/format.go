package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// nodeJSON is a node's metadata as hasp prints it with --json.
type nodeJSON struct {
	Path              string `json:"path"`
	Name              string `json:"name"`
	IsDir             bool   `json:"is_dir"`
	Size              uint64 `json:"size"`
	Instance          uint64 `json:"instance"`
	ContentGeneration uint64 `json:"content_generation"`
	LockGeneration    uint64 `json:"lock_generation"`
	ACLGeneration     uint64 `json:"acl_generation"`
	// Checksum is 16 hex digits: a 64-bit number does not survive JSON
	// readers that use float64.
	Checksum         string `json:"checksum"`
	CreatedRevision  uint64 `json:"created_revision"`
	ModifiedRevision uint64 `json:"modified_revision"`
	EphemeralOwner   uint64 `json:"ephemeral_owner"`
	Children         uint64 `json:"children"`
	Created          *bool  `json:"created,omitempty"` // put and mkdir only
}

func newNodeJSON(path string, st fsapi.Stat) nodeJSON {
	return nodeJSON{
		Path: path, Name: baseName(path), IsDir: st.IsDir, Size: st.Size, Instance: st.Instance,
		ContentGeneration: st.ContentGeneration, LockGeneration: st.LockGeneration,
		ACLGeneration: st.ACLGeneration, Checksum: checksum(st.Checksum),
		CreatedRevision: st.CreatedRevision, ModifiedRevision: st.ModifiedRevision,
		EphemeralOwner: st.EphemeralOwner, Children: st.Children,
	}
}

func checksum(v uint64) string { return fmt.Sprintf("%016x", v) }

// baseName is a full name's last component ("" for a cell's root).
func baseName(full string) string {
	_, p, err := fsapi.ParseName(full)
	if err != nil {
		return ""
	}
	return fsapi.Base(p)
}

// childName is the full name of a directory's child.
func childName(dir, child string) string { return dir + "/" + child }

func kind(st fsapi.Stat) string {
	if st.IsDir {
		return "dir"
	}
	return "file"
}

func owner(st fsapi.Stat) string {
	if st.EphemeralOwner == 0 {
		return "-"
	}
	return "session " + strconv.FormatUint(st.EphemeralOwner, 10)
}

// writeStat prints a node's metadata as aligned "key value" lines.
func writeStat(w io.Writer, path string, st fsapi.Stat) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rows := []struct {
		k string
		v any
	}{
		{"path", path}, {"type", kind(st)}, {"size", st.Size}, {"instance", st.Instance},
		{"content generation", st.ContentGeneration}, {"lock generation", st.LockGeneration},
		{"acl generation", st.ACLGeneration}, {"checksum", checksum(st.Checksum)},
		{"created revision", st.CreatedRevision}, {"modified revision", st.ModifiedRevision},
		{"ephemeral owner", owner(st)}, {"children", st.Children},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%v\n", r.k, r.v)
	}
	return tw.Flush()
}

// writeEntries prints directory entries: names only, or with -l a table.
func writeEntries(w io.Writer, ents []fsapi.DirEntry, long bool) error {
	if !long {
		for _, e := range ents {
			suffix := ""
			if e.Stat.IsDir {
				suffix = "/"
			}
			fmt.Fprintf(w, "%s%s\n", e.Name, suffix)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSIZE\tGENERATION\tEPHEMERAL\tNAME")
	for _, e := range ents {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", kind(e.Stat), e.Stat.Size, e.Stat.ContentGeneration, owner(e.Stat), e.Name)
	}
	return tw.Flush()
}

// statJSON is stat's --json output: the metadata and the lock's state.
type statJSON struct {
	nodeJSON
	Lock lockJSON `json:"lock"`
}

// lockJSON is a node's lock state.
type lockJSON struct {
	Mode       string      `json:"mode"` // free, exclusive or shared
	Generation uint64      `json:"generation"`
	DelayUntil *time.Time  `json:"delay_until,omitempty"`
	Holders    []ownerJSON `json:"holders"`
	Waiters    []ownerJSON `json:"waiters"`
	// WaiterCount counts every queued request; Waiters lists the first 100.
	WaiterCount int `json:"waiter_count"`
}

type ownerJSON struct {
	Session uint64 `json:"session"`
	Handle  uint64 `json:"handle"`
	Mode    string `json:"mode"`
}

func newLockJSON(li cellclient.LockInfo) lockJSON {
	j := lockJSON{Mode: li.Mode.String(), Generation: li.Generation, WaiterCount: li.WaiterCount,
		Holders: []ownerJSON{}, Waiters: []ownerJSON{}}
	if !li.DelayUntil.IsZero() {
		d := li.DelayUntil.UTC()
		j.DelayUntil = &d
	}
	for _, o := range li.Holders {
		j.Holders = append(j.Holders, ownerJSON{o.Session, o.Handle, o.Mode.String()})
	}
	for _, o := range li.Waiters {
		j.Waiters = append(j.Waiters, ownerJSON{o.Session, o.Handle, o.Mode.String()})
	}
	return j
}

// writeLock prints a node's lock state after writeStat's lines.
func writeLock(w io.Writer, li cellclient.LockInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "lock:\t%v\n", li.Mode)
	if len(li.Holders) > 0 {
		fmt.Fprintf(tw, "lock holders:\t%s\n", owners(li.Holders, len(li.Holders)))
	}
	if li.WaiterCount > 0 {
		fmt.Fprintf(tw, "lock waiters:\t%d: %s\n", li.WaiterCount, owners(li.Waiters, li.WaiterCount))
	}
	if !li.DelayUntil.IsZero() {
		fmt.Fprintf(tw, "lock-delay until:\t%s\n", li.DelayUntil.UTC().Format(time.RFC3339Nano))
	}
	return tw.Flush()
}

// owners lists holders or waiters as "session 5 (handle 1, shared), ...".
func owners(os []cellclient.LockOwner, total int) string {
	var parts []string
	for _, o := range os {
		parts = append(parts, fmt.Sprintf("session %d (handle %d, %v)", o.Session, o.Handle, o.Mode))
	}
	if more := total - len(os); more > 0 {
		parts = append(parts, fmt.Sprintf("and %d more", more))
	}
	return strings.Join(parts, ", ")
}
