// Command e2e-v1-apiserver is the e2e suite's small Kubernetes API server for the APIs kube-apiserver 1.20 lacks:
// discovery.k8s.io/v1 EndpointSlices and coordination.k8s.io/v1 Leases, and the core v1 Services and Events the
// endpoint copier watches and writes beside them, served by k8s.io/apiserver's generic server (the real handlers,
// storage over etcd, watch cache, resourceVersions, 410 after compaction, server-side apply with
// structured-merge-diff). Built from Debian's k8s.io library packages in GOPATH mode by tests/e2e/build_fixtures.sh.
//
// No authentication, an allow-all authorizer, no admission (so namespaced objects need no Namespace object), no
// validation, no defaulting, no controllers (no ClusterIP allocation): the test writes default/kubernetes's slices
// itself. Flags: the generic server's --etcd-servers, --bind-address, --secure-port, --tls-cert-file,
// --tls-private-key-file, --watch-cache (and the rest of their option sets).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/storage/names"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	basecompatibility "k8s.io/component-base/compatibility"

	generated "e2ev1server/openapi"
)

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
)

func init() {
	must(discoveryv1.AddToScheme(scheme))
	must(coordinationv1.AddToScheme(scheme))
	must(corev1.AddToScheme(scheme))
	// The external types double as the internal version: storage decodes to the internal version, and a type that is
	// registered under the target version needs no conversion.
	scheme.AddKnownTypes(schema.GroupVersion{Group: discoveryv1.GroupName, Version: runtime.APIVersionInternal},
		&discoveryv1.EndpointSlice{}, &discoveryv1.EndpointSliceList{})
	scheme.AddKnownTypes(schema.GroupVersion{Group: coordinationv1.GroupName, Version: runtime.APIVersionInternal},
		&coordinationv1.Lease{}, &coordinationv1.LeaseList{})
	scheme.AddKnownTypes(schema.GroupVersion{Group: corev1.GroupName, Version: runtime.APIVersionInternal},
		&corev1.Service{}, &corev1.ServiceList{}, &corev1.Event{}, &corev1.EventList{})
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	scheme.AddUnversionedTypes(schema.GroupVersion{Group: "", Version: "v1"},
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
}

func must(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e-v1-apiserver: %v\n", err)
		os.Exit(1)
	}
}

// strategy accepts every object as it is: the suite tests the proxy and the copier, not validation.
type strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
}

func (strategy) NamespaceScoped() bool                                            { return true }
func (strategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (strategy) Validate(context.Context, runtime.Object) field.ErrorList         { return nil }
func (strategy) WarningsOnCreate(context.Context, runtime.Object) []string        { return nil }
func (strategy) Canonicalize(runtime.Object)                                      {}
func (strategy) AllowCreateOnUpdate() bool                                        { return false }
func (strategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}
func (strategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}
func (strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}
func (strategy) AllowUnconditionalUpdate() bool { return true }

type resource struct {
	gv       schema.GroupVersion
	plural   string
	singular string
	newFn    func() runtime.Object
	newList  func() runtime.Object
}

func main() {
	fs := pflag.NewFlagSet("e2e-v1-apiserver", pflag.ExitOnError)
	etcd := genericoptions.NewEtcdOptions(storagebackend.NewDefaultConfig("/registry",
		codecs.LegacyCodec(discoveryv1.SchemeGroupVersion, coordinationv1.SchemeGroupVersion, corev1.SchemeGroupVersion)))
	secure := genericoptions.NewSecureServingOptions().WithLoopback()
	etcd.AddFlags(fs)
	secure.AddFlags(fs)
	must(fs.Parse(os.Args[1:]))

	cfg := genericapiserver.NewRecommendedConfig(codecs)
	cfg.EffectiveVersion = basecompatibility.NewEffectiveVersionFromString("1.36", "", "")
	namer := openapi.NewDefinitionNamer(scheme)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(generated.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIConfig.Info.Title = "e2e-v1-apiserver"
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(generated.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIV3Config.Info.Title = "e2e-v1-apiserver"
	must(secure.ApplyTo(&cfg.SecureServing, &cfg.LoopbackClientConfig))
	must(etcd.ApplyTo(&cfg.Config))
	// Apply may create an object, and the handler asks an authorizer first; everything is allowed here.
	cfg.Authorization.Authorizer = authorizerfactory.NewAlwaysAllowAuthorizer()
	getter := cfg.RESTOptionsGetter

	srv, err := cfg.Complete().New("e2e-v1-apiserver", genericapiserver.NewEmptyDelegate())
	must(err)
	s := strategy{scheme, names.SimpleNameGenerator}
	groups := map[string]map[string]rest.Storage{}
	for _, r := range []resource{
		{discoveryv1.SchemeGroupVersion, "endpointslices", "endpointslice",
			func() runtime.Object { return &discoveryv1.EndpointSlice{} },
			func() runtime.Object { return &discoveryv1.EndpointSliceList{} }},
		{coordinationv1.SchemeGroupVersion, "leases", "lease",
			func() runtime.Object { return &coordinationv1.Lease{} },
			func() runtime.Object { return &coordinationv1.LeaseList{} }},
		{corev1.SchemeGroupVersion, "services", "service",
			func() runtime.Object { return &corev1.Service{} },
			func() runtime.Object { return &corev1.ServiceList{} }},
		{corev1.SchemeGroupVersion, "events", "event",
			func() runtime.Object { return &corev1.Event{} },
			func() runtime.Object { return &corev1.EventList{} }},
	} {
		store := &genericregistry.Store{
			NewFunc:                   r.newFn,
			NewListFunc:               r.newList,
			DefaultQualifiedResource:  r.gv.WithResource(r.plural).GroupResource(),
			SingularQualifiedResource: r.gv.WithResource(r.singular).GroupResource(),
			CreateStrategy:            s,
			UpdateStrategy:            s,
			DeleteStrategy:            s,
			TableConvertor:            rest.NewDefaultTableConvertor(r.gv.WithResource(r.plural).GroupResource()),
		}
		must(store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: getter}))
		if groups[r.gv.Group] == nil {
			groups[r.gv.Group] = map[string]rest.Storage{}
		}
		groups[r.gv.Group][r.plural] = store
	}
	for group, storage := range groups {
		info := genericapiserver.NewDefaultAPIGroupInfo(group, scheme, runtime.NewParameterCodec(scheme), codecs)
		info.VersionedResourcesStorageMap["v1"] = storage
		if group == corev1.GroupName {
			// The core group is the legacy one, served under /api rather than /apis.
			must(srv.InstallLegacyAPIGroup(genericapiserver.DefaultLegacyAPIPrefix, &info))
		} else {
			must(srv.InstallAPIGroup(&info))
		}
	}
	must(srv.PrepareRun().RunWithContext(genericapiserver.SetupSignalContext()))
}
