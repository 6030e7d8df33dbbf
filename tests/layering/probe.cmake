# cmake -DBINARY_DIR=... -DTARGET=... -DEXPECT=pass|fail -DHEADER=... -P probe.cmake
# Builds one layering probe target and checks the outcome: "fail" must fail
# because the header is not found (not for any other reason).
execute_process(
  COMMAND ${CMAKE_COMMAND} --build ${BINARY_DIR} --target ${TARGET}
  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(log "${out}${err}")
if(EXPECT STREQUAL "pass")
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "probe ${TARGET} including ${HEADER} should compile:\n${log}")
  endif()
  message(STATUS "${TARGET}: ${HEADER} compiles, as declared")
else()
  if(result EQUAL 0)
    message(FATAL_ERROR "probe ${TARGET} including ${HEADER} compiled: the layering is not enforced")
  endif()
  string(FIND "${log}" "${HEADER}: No such file or directory" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "probe ${TARGET} failed, but not because ${HEADER} is out of reach:\n${log}")
  endif()
  message(STATUS "${TARGET}: ${HEADER} is out of reach, as declared")
endif()
