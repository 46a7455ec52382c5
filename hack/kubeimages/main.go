// Command kubeimages turns the control-plane binaries built by hack/build-kube.sh into the OCI images
// kubeadm expects (the names and tags `kubeadm config images list` prints) and writes them as one
// docker-archive that `ctr -n k8s.io images import` loads: no registry is needed at the site.
//
//	kubeimages --bin DIR --out kube-images.tar [--extra ROOTFS] IMAGE=BINARY[,ARG...]...
//
// Each IMAGE=BINARY makes a one-layer image holding BINARY at /usr/local/bin/<name> (static Go
// binaries need nothing else) with it as the entrypoint; --extra adds a second layer from a
// directory tree to the images named with --extra-for (kube-proxy's nft and its libraries).
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kubeimages:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kubeimages", flag.ContinueOnError)
	bin := fs.String("bin", "", "directory holding the binaries")
	out := fs.String("out", "", "docker-archive to write")
	extra := fs.String("extra", "", "directory tree added as a second layer to the --extra-for images")
	extraFor := fs.String("extra-for", "", "comma-separated image names (without tag) that get --extra")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" || *out == "" || fs.NArg() == 0 {
		return fmt.Errorf("usage: kubeimages --bin DIR --out FILE [--extra DIR --extra-for NAMES] IMAGE=BINARY...")
	}
	var extraLayer v1.Layer
	if *extra != "" {
		l, err := treeLayer(*extra)
		if err != nil {
			return fmt.Errorf("layer from %s: %w", *extra, err)
		}
		extraLayer = l
	}
	withExtra := map[string]bool{}
	for _, n := range strings.Split(*extraFor, ",") {
		if n != "" {
			withExtra[n] = true
		}
	}
	refs := map[name.Reference]v1.Image{}
	for _, spec := range fs.Args() {
		ref, binary, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("%q: want IMAGE=BINARY", spec)
		}
		tag, err := name.NewTag(ref, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("image name %q: %w", ref, err)
		}
		img, err := binaryImage(filepath.Join(*bin, binary))
		if err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
		if withExtra[tag.Repository.Name()] && extraLayer != nil {
			if img, err = mutate.AppendLayers(img, extraLayer); err != nil {
				return fmt.Errorf("%s: adding %s: %w", ref, *extra, err)
			}
		}
		refs[tag] = img
	}
	tmp := *out + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	return os.Rename(tmp, *out)
}

// binaryImage is a linux/amd64 image with the binary at /usr/local/bin as its entrypoint.
func binaryImage(binary string) (v1.Image, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	target := "/usr/local/bin/" + filepath.Base(binary)
	layer, err := filesLayer(map[string]file{target: {data: data, mode: 0o755}})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{target}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	return mutate.ConfigFile(img, cf)
}

type file struct {
	data    []byte
	mode    int64
	symlink string
}

// treeLayer packs every file, directory and symlink under root, as found.
func treeLayer(root string) (v1.Layer, error) {
	files := map[string]file{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		target := "/" + filepath.ToSlash(rel)
		if d.Type()&fs.ModeSymlink != 0 {
			l, err := os.Readlink(p)
			files[target] = file{symlink: l}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		files[target] = file{data: data, mode: int64(info.Mode().Perm())}
		return err
	})
	if err != nil {
		return nil, err
	}
	return filesLayer(files)
}

// filesLayer writes files (absolute paths) as an uncompressed tar layer with
// their parent directories, sorted, with fixed times (reproducible).
func filesLayer(files map[string]file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	epoch := time.Unix(0, 0)
	for _, n := range names {
		rel := strings.TrimPrefix(n, "/")
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			if dirs[d] {
				break
			}
			dirs[d] = true
		}
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		f := files[n]
		rel := strings.TrimPrefix(n, "/")
		if f.symlink != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: rel, Linkname: f.symlink, Mode: 0o777, ModTime: epoch}); err != nil {
				return nil, err
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
