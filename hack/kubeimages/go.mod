// hack/kubeimages: the control-plane images for an offline kubeadm init, built from binaries with
// go-containerregistry. Its own module, so the agent's module does not grow.
module tfsite.local/kubeimages

go 1.26.8

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
