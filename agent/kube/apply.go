package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// FieldManager is the server-side apply field manager of everything tfsite applies.
const FieldManager = "tfsite"

// Scheme knows the API types tfsite renders (core/v1, apps/v1, rbac/v1).
// It is built on first use, not at program start: every tfsite command
// (discover included) would otherwise pay for it.
var Scheme = sync.OnceValue(func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err) // static registration of k8s.io/api types; cannot fail
		}
	}
	return s
})

// clusterScoped lists the kinds of Scheme that have no namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ComponentStatus": true,
	"ClusterRole": true, "ClusterRoleBinding": true,
}

// staticMapper maps every kind of Scheme to its resource. tfsite applies only
// what it renders, so API discovery (and client-go's typed scheme that comes
// with it, ~2 ms at every program start) is not needed.
func staticMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for gvk := range Scheme().AllKnownTypes() {
		if strings.HasSuffix(gvk.Kind, "List") || strings.HasSuffix(gvk.Kind, "Options") || gvk.Version == runtime.APIVersionInternal {
			continue
		}
		scope := meta.RESTScopeNamespace
		if clusterScoped[gvk.Kind] {
			scope = meta.RESTScopeRoot
		}
		m.Add(gvk, scope)
	}
	return m
}

// ToUnstructured converts a typed object to its wire form with apiVersion/kind
// set from Scheme, dropping the server-owned fields a typed zero value carries
// (metadata.creationTimestamp: null, status: {}).
func ToUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	gvks, _, err := Scheme().ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return nil, fmt.Errorf("finding the kind of %T: %w", obj, err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("converting %T: %w", obj, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvks[0])
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	if st, ok := u.Object["status"].(map[string]any); ok && len(st) == 0 {
		delete(u.Object, "status")
	}
	// Pod templates carry their own null creationTimestamp.
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	return u, nil
}

// EncodeYAML renders objects as one multi-document YAML stream.
func EncodeYAML(header string, objs []runtime.Object) ([]byte, error) {
	var b bytes.Buffer
	if header != "" {
		b.WriteString(header)
	}
	for i, o := range objs {
		u, err := ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		out, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, fmt.Errorf("encoding %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(out)
	}
	return b.Bytes(), nil
}

// Applier applies objects with server-side apply (field manager "tfsite",
// force: tfsite owns what it renders). Applying the same objects again changes
// nothing on the server.
type Applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	log    *slog.Logger
}

// NewApplier connects to the API server described by cfg.
func NewApplier(cfg *rest.Config, log *slog.Logger) (*Applier, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating dynamic client: %w", err)
	}
	return &Applier{
		dyn:    dyn,
		mapper: staticMapper(),
		log:    log,
	}, nil
}

// ApplyResult tells what one Apply call did.
type ApplyResult struct {
	// Changed lists "Kind namespace/name" of objects created or modified.
	Changed []string
	// Unchanged counts objects the server already had exactly so.
	Unchanged int
}

// Apply server-side-applies objs in order. It reports which objects the server
// changed (their resourceVersion moved); every failure is returned, joined.
func (a *Applier) Apply(ctx context.Context, objs []runtime.Object) (ApplyResult, error) {
	var res ApplyResult
	var errs []error
	for _, o := range objs {
		u, err := ToUnstructured(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		id := fmt.Sprintf("%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
		changed, err := a.applyOne(ctx, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("applying %s: %w", id, err))
			continue
		}
		if changed {
			res.Changed = append(res.Changed, id)
			a.log.Info("applied", "object", id)
		} else {
			res.Unchanged++
		}
	}
	return res, errors.Join(errs...)
}

func (a *Applier) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("mapping %s to a resource: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

func (a *Applier) applyOne(ctx context.Context, u *unstructured.Unstructured) (bool, error) {
	ri, err := a.resource(u)
	if err != nil {
		return false, err
	}
	before := ""
	cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
	switch {
	case err == nil:
		before = cur.GetResourceVersion()
	case !apierrors.IsNotFound(err):
		return false, fmt.Errorf("reading current state: %w", err)
	}
	out, err := ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return false, err
	}
	return out.GetResourceVersion() != before, nil
}

// Get reads the live object that like (a rendered object) describes.
func (a *Applier) Get(ctx context.Context, like runtime.Object) (*unstructured.Unstructured, error) {
	u, err := ToUnstructured(like)
	if err != nil {
		return nil, err
	}
	ri, err := a.resource(u)
	if err != nil {
		return nil, err
	}
	out, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return out, nil
}
