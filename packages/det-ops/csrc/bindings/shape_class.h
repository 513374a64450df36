// A shape struct of csrc/common (RoIAlignShape, ...) as a Python class of
// det_ops._C, built by keyword with every field required:
//
//   _C.RoIPoolShape(batch=2, channels=256, height=50, width=68, num_rois=512,
//                   pooled_h=7, pooled_w=7, spatial_scale=0.25)
//
// A field left out, a misspelt or unknown one, a positional argument or a value of
// the wrong kind (a float for an integer field) raises TypeError, so a slip never
// reaches a kernel as a silently wrong shape. Every field is also a read-write
// attribute. The class is module-local: det_ops._C and det_ops._C_emulated each bind
// their own, and a function of either module accepts the other's (pybind11 matches
// module-local classes across modules by their C++ type).
#pragma once

#include <pybind11/pybind11.h>

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace det_ops::bindings {

namespace py = pybind11;

template <typename Shape>
class ShapeClass {
 public:
  ShapeClass(py::module_& m, const char* name, const char* doc)
      : cls_(m, name, doc, py::module_local()), fields_(std::make_shared<std::vector<Field>>()) {
    const std::string class_name = name;
    auto fields = fields_;  // filled by field() after this constructor; read at call time
    cls_.def(py::init([class_name, fields](const py::kwargs& kwargs) {
      Shape shape{};
      for (const Field& f : *fields) {
        if (!kwargs.contains(f.name)) {
          throw py::type_error(class_name + "() missing field '" + f.name + "'");
        }
        f.set(shape, kwargs[f.name.c_str()], class_name);
      }
      for (const auto& item : kwargs) {
        const std::string key = py::str(item.first);
        bool known = false;
        for (const Field& f : *fields) known = known || f.name == key;
        if (!known) {
          throw py::type_error(class_name + "() got an unknown field '" + key +
                               "'; its fields are " + field_names(*fields));
        }
      }
      return shape;
    }));
    cls_.def("__repr__", [class_name, fields](const py::object& self) {
      std::string text = class_name + "(";
      for (size_t i = 0; i < fields->size(); ++i) {
        const std::string& field = (*fields)[i].name;
        text += (i ? ", " : "") + field + "=" + std::string(py::repr(self.attr(field.c_str())));
      }
      return text + ")";
    });
  }

  // Adds the field `name`, the struct member `member`, in the constructor and as an attribute.
  template <typename V>
  ShapeClass& field(const char* name, V Shape::*member) {
    cls_.def_readwrite(name, member);
    auto set = [member, name](Shape& shape, py::handle value, const std::string& class_name) {
      try {
        shape.*member = value.cast<V>();
      } catch (const py::cast_error&) {
        throw py::type_error(class_name + "(): field '" + name + "' must be " +
                             (std::is_floating_point_v<V> ? "a number" : "an integer") +
                             ", got " + std::string(py::repr(value)));
      }
    };
    fields_->push_back(Field{name, set});
    return *this;
  }

 private:
  struct Field {
    std::string name;
    std::function<void(Shape&, py::handle, const std::string&)> set;
  };

  static std::string field_names(const std::vector<Field>& fields) {
    std::string names;
    for (const Field& f : fields) names += (names.empty() ? "" : ", ") + f.name;
    return names;
  }

  py::class_<Shape> cls_;
  std::shared_ptr<std::vector<Field>> fields_;
};

}  // namespace det_ops::bindings
