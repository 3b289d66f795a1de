// The platform's models as wcperf's tests need them, in the platform's conventions:
// timestamps, camelCase columns, frozen snake_case table names, UUID keys, paranoid
// soft deletes, and the 14 performance indexes under the names the models give them.
"use strict";
const { Sequelize, DataTypes } = require("sequelize");

function define(sequelize) {
  const opts = (table, paranoid, indexes = []) => ({
    tableName: table,
    freezeTableName: true,
    timestamps: true,
    underscored: false,
    paranoid,
    indexes,
  });
  const id = { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 };

  const District = sequelize.define("District", {
    id,
    name: { type: DataTypes.STRING(200), allowNull: false },
    code: { type: DataTypes.STRING(50), allowNull: false, unique: true },
    isActive: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
  }, opts("districts", true));

  const School = sequelize.define("School", {
    id,
    name: { type: DataTypes.STRING(200), allowNull: false },
    code: { type: DataTypes.STRING(50), allowNull: false, unique: true },
    districtId: { type: DataTypes.UUID, allowNull: false },
    isActive: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
  }, opts("schools", true));

  const User = sequelize.define("User", {
    id,
    email: { type: DataTypes.STRING(255), allowNull: false, unique: true },
    password: { type: DataTypes.STRING(255), allowNull: false },
    firstName: { type: DataTypes.STRING(255), allowNull: false },
    lastName: { type: DataTypes.STRING(255), allowNull: false },
    role: {
      type: DataTypes.ENUM("ADMIN", "NURSE", "SCHOOL_ADMIN", "DISTRICT_ADMIN", "VIEWER", "COUNSELOR"),
      allowNull: false,
      defaultValue: "ADMIN",
    },
    isActive: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
    schoolId: { type: DataTypes.UUID },
    districtId: { type: DataTypes.UUID },
  }, opts("users", true));

  const Student = sequelize.define("Student", {
    id,
    studentNumber: { type: DataTypes.STRING(50), allowNull: false, unique: true },
    firstName: { type: DataTypes.STRING(100), allowNull: false },
    lastName: { type: DataTypes.STRING(100), allowNull: false },
    dateOfBirth: { type: DataTypes.DATEONLY, allowNull: false },
    grade: { type: DataTypes.STRING(10), allowNull: false },
    gender: { type: DataTypes.STRING(20), allowNull: false },
    medicalRecordNum: { type: DataTypes.STRING(50), unique: true },
    isActive: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
    enrollmentDate: { type: DataTypes.DATE, allowNull: false },
    nurseId: { type: DataTypes.UUID },
    schoolId: { type: DataTypes.UUID },
    districtId: { type: DataTypes.UUID },
    createdBy: { type: DataTypes.UUID },
    updatedBy: { type: DataTypes.UUID },
  }, opts("students", true));

  const RECORD_TYPES = [
    "CHECKUP", "VACCINATION", "ILLNESS", "INJURY", "SCREENING", "PHYSICAL_EXAM",
    "MENTAL_HEALTH", "DENTAL", "VISION", "HEARING", "EXAMINATION", "ALLERGY_DOCUMENTATION",
    "CHRONIC_CONDITION_REVIEW", "GROWTH_ASSESSMENT", "VITAL_SIGNS_CHECK", "EMERGENCY_VISIT",
    "FOLLOW_UP", "CONSULTATION", "DIAGNOSTIC_TEST", "PROCEDURE", "HOSPITALIZATION", "SURGERY",
    "COUNSELING", "THERAPY", "NUTRITION", "MEDICATION_REVIEW", "IMMUNIZATION", "LAB_RESULT",
    "RADIOLOGY", "OTHER",
  ];
  const HealthRecord = sequelize.define("HealthRecord", {
    id,
    studentId: { type: DataTypes.UUID, allowNull: false },
    recordType: { type: DataTypes.ENUM(...RECORD_TYPES), allowNull: false },
    title: { type: DataTypes.STRING(200), allowNull: false },
    description: { type: DataTypes.TEXT, allowNull: false },
    recordDate: { type: DataTypes.DATE, allowNull: false },
    provider: { type: DataTypes.STRING(200) },
    diagnosis: { type: DataTypes.TEXT },
    diagnosisCode: { type: DataTypes.STRING(20) },
    isConfidential: { type: DataTypes.BOOLEAN, defaultValue: false },
    notes: { type: DataTypes.TEXT },
    attachments: { type: DataTypes.JSON, allowNull: false, defaultValue: [] },
    createdBy: { type: DataTypes.UUID },
    updatedBy: { type: DataTypes.UUID },
  }, opts("health_records", true, [
    { name: "idx_health_records_student_type_date", fields: ["studentId", "recordType", "recordDate"] },
    { name: "idx_health_records_student_confidential", fields: ["studentId", "isConfidential"] },
    { name: "idx_health_records_type_confidential_date", fields: ["recordType", "isConfidential", "recordDate"] },
    { name: "idx_health_records_provider_date", fields: ["provider", "recordDate"] },
    { name: "idx_health_records_diagnosis_code", fields: ["diagnosisCode"] },
  ]));

  const Appointment = sequelize.define("Appointment", {
    id,
    studentId: { type: DataTypes.UUID, allowNull: false },
    nurseId: { type: DataTypes.UUID },
    type: { type: DataTypes.STRING(50), allowNull: false },
    scheduledAt: { type: DataTypes.DATE, allowNull: false },
    duration: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 30 },
    status: { type: DataTypes.STRING(50), allowNull: false, defaultValue: "SCHEDULED" },
    reason: { type: DataTypes.STRING(500), allowNull: false },
    notes: { type: DataTypes.TEXT },
    recurringGroupId: { type: DataTypes.UUID },
  }, opts("appointments", true, [
    { name: "idx_appointments_student_scheduled", fields: ["studentId", "scheduledAt"] },
    { name: "idx_appointments_nurse_scheduled", fields: ["nurseId", "scheduledAt"] },
    { name: "idx_appointments_status_scheduled", fields: ["status", "scheduledAt"] },
    { name: "idx_appointments_student_status_scheduled", fields: ["studentId", "status", "scheduledAt"] },
    { name: "idx_appointments_type_status_scheduled", fields: ["type", "status", "scheduledAt"] },
    { name: "idx_appointments_recurring_group", fields: ["recurringGroupId"] },
  ]));

  const Medication = sequelize.define("Medication", {
    id,
    name: { type: DataTypes.STRING(255), allowNull: false },
    genericName: { type: DataTypes.STRING(255) },
    dosageForm: { type: DataTypes.STRING(255), allowNull: false },
    strength: { type: DataTypes.STRING(255), allowNull: false },
    ndc: { type: DataTypes.STRING(255), unique: true },
    isControlled: { type: DataTypes.BOOLEAN, defaultValue: false },
    deaSchedule: { type: DataTypes.ENUM("I", "II", "III", "IV", "V") },
    isActive: { type: DataTypes.BOOLEAN, defaultValue: true },
  }, opts("medications", true, [
    { name: "idx_medications_active_name", fields: ["isActive", "name"] },
    { name: "idx_medications_controlled_schedule", fields: ["isControlled", "deaSchedule"] },
    { name: "idx_medications_form_active", fields: ["dosageForm", "isActive"] },
  ]));

  const EmergencyContact = sequelize.define("EmergencyContact", {
    id,
    studentId: { type: DataTypes.UUID, allowNull: false },
    firstName: { type: DataTypes.STRING(100), allowNull: false },
    lastName: { type: DataTypes.STRING(100), allowNull: false },
    relationship: { type: DataTypes.STRING(50), allowNull: false },
    phoneNumber: { type: DataTypes.STRING(20), allowNull: false },
    priority: { type: DataTypes.STRING(50), allowNull: false, defaultValue: "PRIMARY" },
    isActive: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
    verificationStatus: { type: DataTypes.STRING(50), defaultValue: "UNVERIFIED" },
  }, opts("emergency_contacts", false));

  School.belongsTo(District, { foreignKey: "districtId" });
  User.belongsTo(School, { foreignKey: "schoolId", constraints: false });
  Student.belongsTo(User, { as: "nurse", foreignKey: "nurseId" });
  Student.belongsTo(School, { foreignKey: "schoolId" });
  Student.belongsTo(District, { foreignKey: "districtId" });
  HealthRecord.belongsTo(Student, { as: "student", foreignKey: "studentId" });
  Appointment.belongsTo(Student, { as: "student", foreignKey: "studentId" });
  Appointment.belongsTo(User, { as: "nurse", foreignKey: "nurseId" });
  EmergencyContact.belongsTo(Student, { foreignKey: "studentId" });
  return { District, School, User, Student, HealthRecord, Appointment, Medication, EmergencyContact };
}

module.exports = { define, Sequelize };
